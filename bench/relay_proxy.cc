// The smallest layer-4 proxy that can be built from usher's splice relay: one event loop, each
// accepted connection relayed to one target in both directions. It exists to measure the relay
// primitive against HAProxy `mode tcp` and nginx `stream` (bench/relay.sh, bench/tcp.sh).
//   relay_proxy LISTEN TARGET[,TARGET...] epoll|io_uring [splice|copy]
// Targets are taken in turn, one per connection. `copy` relays through a 16 KiB buffer with the
// reactor's read and write (io_uring: multishot receive into the provided-buffer ring and sends
// submitted with the turn's batch; epoll: recv, and writes batched at the end of the turn)
// instead of splice(2): what a small-message flow costs either way.
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/address.h"
#include "net/relay.h"

namespace {

using usher::Address;
using namespace usher::net;

// Counts finished directions; the second one closes both sockets.
struct Connection {
  Connection(Reactor& reactor, int client_fd, int upstream_fd)
      : client(reactor, client_fd), upstream(reactor, upstream_fd) {}
  Socket client;
  Socket upstream;
  int running = 2;
};

Task<void> direction(std::shared_ptr<Connection> c, Socket& from, Socket& to) {
  RelayResult result = co_await splice_relay(from, to, 60'000);
  ::shutdown(to.fd(), result.clean ? SHUT_WR : SHUT_RDWR);
  if (!result.clean) ::shutdown(from.fd(), SHUT_RDWR);
  --c->running;
}

Task<void> copy_direction(std::shared_ptr<Connection> c, Socket& from, Socket& to) {
  char buffer[16384];
  bool clean = false, delivered = true;
  while (delivered) {
    const long in = co_await from.read(buffer, sizeof buffer, 0);
    if (in <= 0) {
      clean = in == 0;
      break;
    }
    for (long done = 0; done < in;) {
      const long out = co_await to.write(buffer + done, static_cast<size_t>(in - done), 0);
      if (out <= 0) {
        delivered = false;
        break;
      }
      done += out;
    }
  }
  ::shutdown(to.fd(), clean ? SHUT_WR : SHUT_RDWR);
  if (!clean) ::shutdown(from.fd(), SHUT_RDWR);
  --c->running;
}

Task<void> serve(Reactor& reactor, int client_fd, Address target, bool copy) {
  auto c = std::make_shared<Connection>(reactor, client_fd, Socket::open_tcp(target));
  long connected = co_await c->upstream.connect(target, reactor.now_ms() + 3000);
  if (connected < 0) co_return;
  spawn((copy ? copy_direction : direction)(c, c->client, c->upstream));
  spawn((copy ? copy_direction : direction)(c, c->upstream, c->client));
}

Task<void> accept_loop(Reactor& reactor, Socket& listener, std::vector<Address> targets,
                       bool copy) {
  for (size_t next = 0;; ++next) {
    long fd = co_await listener.accept(0);
    if (fd >= 0) spawn(serve(reactor, static_cast<int>(fd), targets[next % targets.size()], copy));
  }
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc == 5 ? argv[4] : "splice";
  if ((argc != 4 && argc != 5) || (mode != "splice" && mode != "copy")) {
    std::fprintf(stderr,
                 "usage: relay_proxy LISTEN TARGET[,TARGET...] epoll|io_uring [splice|copy]\n");
    return 2;
  }
  auto listen = Address::parse(argv[1]);
  std::vector<Address> targets;
  std::string_view list = argv[2];
  bool bad = !listen;
  while (!bad && !list.empty()) {
    const size_t comma = list.find(',');
    auto target = Address::parse(list.substr(0, comma));
    bad = !target;
    if (target) targets.push_back(*target);
    list = comma == std::string_view::npos ? std::string_view() : list.substr(comma + 1);
  }
  if (bad || targets.empty()) {
    std::fprintf(stderr, "relay_proxy: bad address\n");
    return 2;
  }
  std::string error;
  const std::string backend = argv[3];
  auto reactor = make_reactor(backend == "epoll" ? IoBackend::kEpoll : IoBackend::kIoUring, error);
  if (!reactor) {
    std::fprintf(stderr, "relay_proxy: %s\n", error.c_str());
    return 1;
  }
  std::signal(SIGPIPE, SIG_IGN);
  int fd = ::socket(listen->family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::bind(fd, listen->sockaddr_ptr(), listen->length()) < 0 || ::listen(fd, 128) < 0) {
    std::perror("relay_proxy: listen");
    return 1;
  }
  Socket listener(*reactor, fd);
  spawn(accept_loop(*reactor, listener, std::move(targets), mode == "copy"));
  reactor->run({});
}
