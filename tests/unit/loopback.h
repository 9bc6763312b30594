#pragma once
// A connected TCP pair on loopback for tests: {peer, accepted end}. The peer blocks (a test's
// plain reads and writes); the accepted end is non-blocking, as usher's sockets are.
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <utility>

namespace usher {

// A listening socket on 127.0.0.1 with an ephemeral port, whose address lands in `address`.
inline int loopback_listener(int backlog, sockaddr_in& address) {
  int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  address = {};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  ::bind(listener, reinterpret_cast<sockaddr*>(&address), length);
  ::listen(listener, backlog);
  ::getsockname(listener, reinterpret_cast<sockaddr*>(&address), &length);
  return listener;
}

inline std::pair<int, int> loopback_tcp_pair() {
  sockaddr_in address;
  int listener = loopback_listener(1, address);
  int peer = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ::connect(peer, reinterpret_cast<sockaddr*>(&address), sizeof address);
  int accepted = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
  ::close(listener);
  return {peer, accepted};
}

}  // namespace usher
