// session-app: the application server of the seed system (docs/seed-system.md).
//   session-app --listen 127.0.0.1:9101 --name alpha --store redis --redis 127.0.0.1:6390
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstring>

#include "app.h"
#include "base/duration.h"

namespace {

struct Options {
  std::string listen = "127.0.0.1:9101";
  std::string name;
  std::string store = "redis";
  std::string redis = "127.0.0.1:6379";
  std::string redis_timeout = "250ms";
  std::string session_ttl = "30m";
};

int listen_on(const usher::Address& address) {
  int fd = ::socket(address.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int one = 1;
  if (fd >= 0) ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (fd < 0 || ::bind(fd, address.sockaddr_ptr(), address.length()) < 0 || ::listen(fd, 512) < 0) {
    spdlog::error("cannot listen on {}: {}", address.to_string(), std::strerror(errno));
    if (fd >= 0) ::close(fd);
    return -1;
  }
  return fd;
}

template <typename T>
bool parsed(const usher::Expected<T>& value, const char* option) {
  if (!value) spdlog::error("{}: {}", option, value.error().message);
  return value.ok();
}

int run(const Options& options) {
  auto listen = usher::Address::parse(options.listen);
  auto redis = usher::Address::parse(options.redis);
  auto timeout = usher::parse_duration(options.redis_timeout);
  auto ttl = usher::parse_duration(options.session_ttl);
  if (!parsed(listen, "--listen") || !parsed(redis, "--redis") ||
      !parsed(timeout, "--redis-timeout") || !parsed(ttl, "--session-ttl")) {
    return 2;
  }
  const std::string name = options.name.empty() ? listen->to_string() : options.name;
  int fd = listen_on(*listen);
  if (fd < 0) return 1;

  signal(SIGPIPE, SIG_IGN);
  auto reactor = usher::net::make_epoll_reactor();
  const auto ttl_ms = static_cast<uint64_t>(ttl->count());
  std::unique_ptr<session_app::SessionStore> store =
      options.store == "memory"
          ? session_app::make_memory_store(*reactor, ttl_ms)
          : session_app::make_redis_store(*reactor, *redis, static_cast<uint64_t>(timeout->count()),
                                          ttl_ms);
  spdlog::info(
      "session-app {} on {}, sessions in {}", name, listen->to_string(),
      options.store == "memory" ? "this process's memory" : "redis at " + redis->to_string());
  session_app::serve(*reactor, fd, session_app::make_app(name, *store, ttl_ms / 1000));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  CLI::App cli{"session-app: a stateless application server whose sessions live in a store"};
  cli.add_option("--listen", options.listen, "address to serve on")->capture_default_str();
  cli.add_option("--name", options.name, "server name shown in every answer (default: address)");
  cli.add_option("--store", options.store, "where sessions live")
      ->check(CLI::IsMember({"memory", "redis"}))
      ->capture_default_str();
  cli.add_option("--redis", options.redis, "redis address (store redis)")->capture_default_str();
  cli.add_option("--redis-timeout", options.redis_timeout, "longest wait for redis, then 503")
      ->capture_default_str();
  cli.add_option("--session-ttl", options.session_ttl, "session lifetime after the last visit")
      ->capture_default_str();
  CLI11_PARSE(cli, argc, argv);
  return run(options);
}
