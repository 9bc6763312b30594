// The smallest layer-4 proxy that can be built from usher's splice relay: one event loop, each
// accepted connection relayed to one target in both directions. It exists to measure the relay
// primitive against HAProxy `mode tcp` and nginx `stream` (bench/relay.sh).
//   relay_proxy LISTEN TARGET epoll|io_uring
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <memory>
#include <string>

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

Task<void> serve(Reactor& reactor, int client_fd, Address target) {
  auto c = std::make_shared<Connection>(reactor, client_fd, Socket::open_tcp(target));
  long connected = co_await c->upstream.connect(target, reactor.now_ms() + 3000);
  if (connected < 0) co_return;
  spawn(direction(c, c->client, c->upstream));
  spawn(direction(c, c->upstream, c->client));
}

Task<void> accept_loop(Reactor& reactor, Socket& listener, Address target) {
  while (true) {
    long fd = co_await listener.accept(0);
    if (fd >= 0) spawn(serve(reactor, static_cast<int>(fd), target));
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: relay_proxy LISTEN TARGET epoll|io_uring\n");
    return 2;
  }
  auto listen = Address::parse(argv[1]);
  auto target = Address::parse(argv[2]);
  if (!listen || !target) {
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
  spawn(accept_loop(*reactor, listener, *target));
  reactor->run({});
}
