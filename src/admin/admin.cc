#include "admin/admin.h"

#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>

#include "admin/metrics_page.h"
#include "codec/http1/head_parser.h"

namespace usher::admin {

namespace {

std::string response(int status, std::string_view reason, const std::string& body,
                     std::string_view type = "application/json") {
  return "HTTP/1.1 " + std::to_string(status) + " " + std::string(reason) +
         "\r\nContent-Type: " + std::string(type) +
         "\r\nContent-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" +
         body;
}

std::string error(int status, std::string_view reason, const std::string& message) {
  return response(status, reason, nlohmann::json{{"error", message}}.dump() + "\n");
}

}  // namespace

AdminServer::AdminServer(const Address& listen, std::vector<proxy::PoolState*> pools,
                         const metrics::Registry& metrics, const log::AccessLog* access_log)
    : listen_(listen),
      pools_(std::move(pools)),
      metrics_(metrics),
      access_log_(access_log),
      reactor_(net::make_epoll_reactor()) {}

AdminServer::~AdminServer() {
  stop();
}

std::string AdminServer::bind() {
  int fd = ::socket(listen_.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (fd < 0 || ::bind(fd, listen_.sockaddr_ptr(), listen_.length()) < 0 || ::listen(fd, 128) < 0) {
    std::string message =
        "admin: cannot listen on " + listen_.to_string() + ": " + std::strerror(errno);
    if (fd >= 0) ::close(fd);
    return message;
  }
  listener_ = std::make_unique<net::Socket>(*reactor_, fd);
  return {};
}

void AdminServer::start() {
  thread_ = std::thread([this] {
    net::spawn(accept_loop());
    // stop() cancels the accept; the accept loop then ends the reactor, so no frame is left.
    reactor_->run({.on_wake =
                       [this] {
                         if (stopping_) reactor_->cancel(*listener_);
                       },
                   .on_idle = {}});
  });
}

void AdminServer::stop() {
  if (!thread_.joinable()) return;
  stopping_ = true;
  reactor_->wake();
  thread_.join();
}

net::Task<void> AdminServer::accept_loop() {
  while (true) {
    long fd = co_await listener_->accept(0);
    if (fd == -ECANCELED) break;
    if (fd >= 0) net::spawn(serve(static_cast<int>(fd)));
  }
  reactor_->stop();
}

// One request per connection: admin traffic is rare and small.
net::Task<void> AdminServer::serve(int fd) {
  net::Socket socket(*reactor_, fd);
  std::string buffer(8192, '\0');
  size_t received = 0, scanned = 0;
  std::vector<http1::Header> scratch(64);
  const uint64_t deadline = reactor_->now_ms() + 5000;
  std::string out;
  while (out.empty()) {
    long n = co_await socket.read(buffer.data() + received, buffer.size() - received, deadline);
    if (n <= 0) co_return;
    received += static_cast<size_t>(n);
    http1::RequestHead head;
    http1::ParseError parse_error;
    auto status = http1::parse_request({buffer.data(), received}, {4096, 8192, 64}, scratch,
                                       scanned, head, parse_error);
    if (status == http1::ParseStatus::kError) {
      out = error(parse_error.http_status, "Bad Request", parse_error.reason);
    } else if (status == http1::ParseStatus::kComplete) {
      out = respond(head.method_text, head.target);
    } else if (received == buffer.size()) {
      out = error(431, "Request Header Fields Too Large", "request head too large");
    }
  }
  for (size_t sent = 0; sent < out.size();) {
    long n = co_await socket.write(out.data() + sent, out.size() - sent, deadline);
    if (n <= 0) break;
    sent += static_cast<size_t>(n);
  }
}

std::string AdminServer::respond(std::string_view method, std::string_view target) {
  target = target.substr(0, target.find('?'));
  if (target == "/livez") return response(200, "OK", "ok\n", "text/plain");
  if (target == "/metrics") {
    return response(200, "OK", metrics_page(metrics_, pools_, access_log_),
                    "text/plain; version=0.0.4");
  }
  if (target == "/readyz") {
    return draining_ ? response(503, "Service Unavailable", "draining\n", "text/plain")
                     : response(200, "OK", "ready\n", "text/plain");
  }
  if (target == "/api/v1/pools") {
    if (method != "GET") return error(405, "Method Not Allowed", "use GET");
    nlohmann::json pools = nlohmann::json::array();
    for (proxy::PoolState* pool : pools_) {
      nlohmann::json backends = nlohmann::json::array();
      for (uint32_t i = 0; i < pool->snapshot.backends.size(); ++i) {
        const balance::BackendLive& b = pool->live[i];
        backends.push_back({{"address", pool->snapshot.backends[i].address.to_string()},
                            {"weight", pool->snapshot.backends[i].weight},
                            {"healthy", b.healthy.load(std::memory_order_relaxed)},
                            {"draining", b.draining.load(std::memory_order_relaxed)},
                            {"active", b.active.load(std::memory_order_relaxed)}});
      }
      pools.push_back(
          {{"name", pool->config.name}, {"balance", pool->config.balance}, {"backends", backends}});
    }
    return response(200, "OK", nlohmann::json{{"pools", pools}}.dump(2) + "\n");
  }
  // /api/v1/pools/POOL/backends/ADDR/(drain|ready)
  constexpr std::string_view kPrefix = "/api/v1/pools/";
  if (target.rfind(kPrefix, 0) != 0) return error(404, "Not Found", "no such endpoint");
  std::string_view rest = target.substr(kPrefix.size());
  size_t slash = rest.find("/backends/");
  size_t action = rest.rfind('/');
  if (slash == std::string_view::npos || action <= slash + 9)
    return error(404, "Not Found", "no such endpoint");
  std::string_view pool_name = rest.substr(0, slash);
  std::string_view address = rest.substr(slash + 10, action - slash - 10);
  std::string_view verb = rest.substr(action + 1);
  if (verb != "drain" && verb != "ready")
    return error(404, "Not Found", "use .../drain or .../ready");
  if (method != "POST") return error(405, "Method Not Allowed", "use POST");
  for (proxy::PoolState* pool : pools_) {
    if (pool->config.name != pool_name) continue;
    for (uint32_t i = 0; i < pool->snapshot.backends.size(); ++i) {
      if (pool->snapshot.backends[i].address.to_string() != address) continue;
      bool drain = verb == "drain";
      pool->live[i].draining.store(drain, std::memory_order_relaxed);
      spdlog::warn("admin: pool={} backend={} {}", pool_name, address,
                   drain ? "DRAINING: no new requests, in-flight ones finish"
                         : "READY: takes requests again");
      return response(
          200, "OK",
          nlohmann::json{{"pool", pool_name}, {"backend", address}, {"draining", drain}}.dump() +
              "\n");
    }
    return error(404, "Not Found",
                 "pool '" + std::string(pool_name) + "' has no backend " + std::string(address));
  }
  return error(404, "Not Found", "no pool '" + std::string(pool_name) + "'");
}

}  // namespace usher::admin
