#include "proxy/l7/stream.h"

#include <sys/socket.h>

#include <cerrno>

#include <tuple>

namespace usher::proxy::l7 {

std::pair<std::string_view, std::string_view> unwritten(std::string_view a, std::string_view b,
                                                        size_t written) {
  if (written < a.size()) return {a.substr(written), b};
  return {{}, b.substr(written - a.size())};
}

net::Task<bool> write_all(net::Socket& socket, std::string_view a, std::string_view b,
                          uint64_t deadline_ms) {
  while (!a.empty() || !b.empty()) {
    iovec iov[2] = {{const_cast<char*>(a.data()), a.size()},
                    {const_cast<char*>(b.data()), b.size()}};
    const int first = a.empty() ? 1 : 0;
    long n = co_await socket.writev(iov + first, 2 - first, deadline_ms);
    if (n <= 0) co_return false;
    std::tie(a, b) = unwritten(a, b, static_cast<size_t>(n));
  }
  co_return true;
}

net::Task<long> write_all_idle(net::Socket& socket, std::string_view a, std::string_view b,
                               uint64_t idle_ms) {
  while (!a.empty() || !b.empty()) {
    iovec iov[2] = {{const_cast<char*>(a.data()), a.size()},
                    {const_cast<char*>(b.data()), b.size()}};
    const int first = a.empty() ? 1 : 0;
    long n = co_await socket.writev(iov + first, 2 - first, socket.reactor().now_ms() + idle_ms);
    if (n <= 0) co_return n < 0 ? n : -EPIPE;
    std::tie(a, b) = unwritten(a, b, static_cast<size_t>(n));
  }
  co_return 0;
}

namespace {

// Counts finished directions; the last one resumes the waiting tunnel. Also when either
// direction last moved bytes: the tunnel is idle only when both are (HAProxy's timeout tunnel).
struct Join {
  int pending = 2;
  uint64_t last_activity_ms = 0;
  std::coroutine_handle<> waiter;

  void arrive() {
    if (--pending == 0 && waiter) waiter.resume();
  }
  bool await_ready() const noexcept { return pending == 0; }
  void await_suspend(std::coroutine_handle<> h) noexcept { waiter = h; }
  void await_resume() const noexcept {}
};

net::Task<void> pump(Side from, Side to, net::BufferPool& buffers, uint64_t idle_ms, Join& join) {
  net::Reactor& reactor = from.socket.reactor();
  net::Buffer buffer = buffers.take();
  bool clean = false;
  while (true) {
    long n = co_await from.read(buffer.data(), buffer.capacity(), join.last_activity_ms + idle_ms);
    // Silent this way, but the other way moved bytes meanwhile: wait on from then.
    if (n == -ETIMEDOUT && reactor.now_ms() < join.last_activity_ms + idle_ms) continue;
    if (n <= 0) {
      clean = n == 0;
      break;
    }
    join.last_activity_ms = reactor.now_ms();
    std::string_view bytes(buffer.data(), static_cast<size_t>(n));
    const bool sent = co_await to.write_all(bytes, {}, reactor.now_ms() + idle_ms);
    if (!sent) break;
    join.last_activity_ms = reactor.now_ms();
  }
  buffer.release();
  if (clean) {
    if (to.tls) co_await to.tls->close(reactor.now_ms() + idle_ms);
    ::shutdown(to.socket.fd(), SHUT_WR);  // pass the half-close on
  } else {
    // Wake the other direction too: one side failing ends the tunnel.
    ::shutdown(from.socket.fd(), SHUT_RDWR);
    ::shutdown(to.socket.fd(), SHUT_RDWR);
  }
  join.arrive();
}

}  // namespace

net::Task<void> tunnel(Side a, Side b, net::BufferPool& buffers, uint64_t idle_ms) {
  Join join;
  join.last_activity_ms = a.socket.reactor().now_ms();
  net::spawn(pump(a, b, buffers, idle_ms, join));
  net::spawn(pump(b, a, buffers, idle_ms, join));
  co_await join;
}

void abort_connection(net::Socket& socket) {
  if (!socket.is_open()) return;
  linger hard{1, 0};
  ::setsockopt(socket.fd(), SOL_SOCKET, SO_LINGER, &hard, sizeof hard);
  socket.close();
}

}  // namespace usher::proxy::l7
