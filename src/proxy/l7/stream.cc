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

using State = TunnelFlow::State;

// Counts finished directions; the last one resumes the waiting tunnel. Also when either
// direction last moved bytes: the tunnel is idle only when both are (HAProxy's timeout tunnel).
struct Join {
  int pending = 2;
  uint64_t last_activity_ms = 0;
  std::coroutine_handle<> waiter;
  TunnelControl* control = nullptr;

  bool ending() const { return control && control->ending; }
  void arrive() {
    if (--pending == 0 && waiter) waiter.resume();
  }
  bool await_ready() const noexcept { return pending == 0; }
  void await_suspend(std::coroutine_handle<> h) noexcept { waiter = h; }
  void await_resume() const noexcept {}
};

// A write to `to` is over. end() leaves a side alone while it is written to, so the other
// direction's read from it is stopped now if the tunnel is ending.
void write_over(TunnelFlow* flow, const Join& join, net::Socket& to) {
  if (!flow) return;
  flow->writing = false;
  if (join.ending()) to.reactor().cancel(to);
}

// `flow`: this direction's state in a WebSocket tunnel, else null.
net::Task<void> pump(Side from, Side to, net::BufferPool& buffers, uint64_t idle_ms, Join& join,
                     TunnelFlow* flow) {
  net::Reactor& reactor = from.socket.reactor();
  net::Buffer buffer = buffers.take();
  State end = State::kFailed;
  while (true) {
    if (join.ending()) {
      end = State::kStopped;
      break;
    }
    long n = co_await from.read(buffer.data(), buffer.capacity(), join.last_activity_ms + idle_ms);
    // Whatever the read brought is dropped: the stream to `to` stops after its last whole write.
    if (join.ending()) {
      end = State::kStopped;
      break;
    }
    // Silent this way, but the other way moved bytes meanwhile: wait on from then.
    if (n == -ETIMEDOUT && reactor.now_ms() < join.last_activity_ms + idle_ms) continue;
    if (n <= 0) {
      if (n == 0) end = State::kHalfClosed;
      break;
    }
    join.last_activity_ms = reactor.now_ms();
    std::string_view bytes(buffer.data(), static_cast<size_t>(n));
    if (flow) flow->writing = true;
    const bool sent = co_await to.write_all(bytes, {}, reactor.now_ms() + idle_ms);
    write_over(flow, join, to.socket);
    if (!sent) break;
    if (flow) flow->written.feed(bytes);
    join.last_activity_ms = reactor.now_ms();
    if (join.ending()) {
      end = State::kStopped;
      break;
    }
  }
  buffer.release();
  if (flow) flow->state = end;
  if (end == State::kHalfClosed) {
    if (to.tls) {
      if (flow) flow->writing = true;
      co_await to.tls->close(reactor.now_ms() + idle_ms);
      write_over(flow, join, to.socket);
    }
    ::shutdown(to.socket.fd(), SHUT_WR);  // pass the half-close on
  } else if (end == State::kFailed) {
    // Wake the other direction too: one side failing ends the tunnel.
    ::shutdown(from.socket.fd(), SHUT_RDWR);
    ::shutdown(to.socket.fd(), SHUT_RDWR);
  }
  join.arrive();
}

// Sends `frame` where the side's stream stopped between frames (none when a Close already went
// that way), then shuts the side for writing; where it stopped inside a frame nothing can be
// added, and the side is shut both ways. Whether the side is to be read until it closes.
net::Task<bool> send_close(Side side, const TunnelFlow& flow, std::string_view frame,
                           uint64_t deadline_ms) {
  if (flow.state == State::kHalfClosed) co_return true;  // shut for writing already
  bool sent = false;
  if (flow.state == State::kStopped && flow.written.at_boundary()) {
    sent = flow.written.close_seen();
    if (!sent) {
      const bool written = co_await side.write_all(frame, {}, deadline_ms);
      sent = written;
    }
  }
  if (!sent) {
    ::shutdown(side.socket.fd(), SHUT_RDWR);
    co_return false;
  }
  if (side.tls) co_await side.tls->close(deadline_ms);
  ::shutdown(side.socket.fd(), SHUT_WR);
  co_return true;
}

// Closing with bytes unread would reset the connection, and the peer could lose the frame.
net::Task<void> read_until_closed(Side side, net::BufferPool& buffers, uint64_t deadline_ms) {
  net::Buffer buffer = buffers.take();
  while (true) {
    const long n = co_await side.read(buffer.data(), buffer.capacity(), deadline_ms);
    if (n <= 0) break;
  }
}

// The end TunnelControl::end() asked for, once both directions have stopped.
net::Task<void> close_websocket(Side client, Side backend, const TunnelControl& control,
                                net::BufferPool& buffers) {
  const uint64_t deadline = control.end_deadline_ms;
  const websocket::CloseFrame to_client = websocket::close_frame(websocket::kGoingAway);
  const websocket::CloseFrame to_backend =
      websocket::masked_close_frame(websocket::kGoingAway, control.mask);
  const bool read_client =
      co_await send_close(client, control.toward[0], to_client.view(), deadline);
  const bool read_backend =
      co_await send_close(backend, control.toward[1], to_backend.view(), deadline);
  if (read_client) co_await read_until_closed(client, buffers, deadline);
  if (read_backend) co_await read_until_closed(backend, buffers, deadline);
}

}  // namespace

void TunnelControl::end() {
  if (ending) return;
  ending = true;
  end_deadline_ms = reactor.now_ms() + kTunnelCloseMs;
  for (int side = 0; side < 2; ++side) {
    // Stops the read from this side; a write to it under way cancels it once over (pump).
    if (sockets[side] && !toward[side].writing) reactor.cancel(*sockets[side]);
  }
}

net::Task<void> tunnel(Side a, Side b, net::BufferPool& buffers, uint64_t idle_ms,
                       TunnelControl* control) {
  Join join;
  join.control = control;
  join.last_activity_ms = a.socket.reactor().now_ms();
  if (control) {
    control->sockets[0] = &a.socket;
    control->sockets[1] = &b.socket;
  }
  net::spawn(pump(a, b, buffers, idle_ms, join, control ? &control->toward[1] : nullptr));
  net::spawn(pump(b, a, buffers, idle_ms, join, control ? &control->toward[0] : nullptr));
  co_await join;
  if (join.ending()) co_await close_websocket(a, b, *control, buffers);
  if (control) control->sockets[0] = control->sockets[1] = nullptr;
}

void abort_connection(net::Socket& socket) {
  if (!socket.is_open()) return;
  linger hard{1, 0};
  ::setsockopt(socket.fd(), SOL_SOCKET, SO_LINGER, &hard, sizeof hard);
  socket.close();
}

}  // namespace usher::proxy::l7
