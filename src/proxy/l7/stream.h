#pragma once
// Moving bytes between sockets: whole writes and the bidirectional tunnel of an upgraded
// connection. Worker thread only.
#include <cstddef>
#include <string_view>
#include <utility>
#include <variant>

#include "net/buffer_pool.h"
#include "net/socket.h"
#include "net/task.h"
#include "proxy/l7/websocket_frames.h"
#include "tls/stream.h"

namespace usher::proxy::l7 {

// A read from a plain socket (the socket's own operation: no coroutine frame) or through TLS.
class ReadOp {
 public:
  explicit ReadOp(net::OpAwaitable plain) : op_(std::in_place_index<0>, plain) {}
  explicit ReadOp(net::Task<long> secured) : op_(std::in_place_index<1>, std::move(secured)) {}
  bool await_ready() const noexcept { return false; }
  bool await_suspend(std::coroutine_handle<> waiter) {
    return std::visit([waiter](auto& op) { return op.await_suspend(waiter); }, op_);
  }
  long await_resume() {
    return std::visit([](auto& op) -> long { return op.await_resume(); }, op_);
  }

 private:
  std::variant<net::OpAwaitable, net::Task<long>> op_;
};

// Writes a then b completely; false if the peer failed or the deadline passed.
net::Task<bool> write_all(net::Socket& socket, std::string_view a, std::string_view b,
                          uint64_t deadline_ms);

// Writes a then b completely while the peer keeps taking bytes: each write may wait idle_ms.
// Returns 0, or the failed write's result (-ETIMEDOUT: the peer took nothing for idle_ms).
net::Task<long> write_all_idle(net::Socket& socket, std::string_view a, std::string_view b,
                               uint64_t idle_ms);

// A request carried by a multiplexed client connection (an HTTP/2 stream). The L7 path reads
// the request from it and writes the response to it as HTTP/1.1 bytes, which the channel
// translates, so that every L7 feature works the same whichever protocol the client speaks.
class MessageChannel {
 public:
  virtual ~MessageChannel() = default;
  // As a socket's read: bytes, 0 at the request's end, or -errno.
  virtual net::Task<long> read(char* buffer, size_t length, uint64_t deadline_ms) = 0;
  virtual net::Task<bool> write_all(std::string_view a, std::string_view b,
                                    uint64_t deadline_ms) = 0;
  // The request is given up (its client went): a backend stream is reset at once.
  virtual void cancel() {}
};

// One end of a relay: a socket, and the TLS stream over it when there is one; or a channel.
struct Side {
  net::Socket& socket;
  tls::Stream* tls = nullptr;
  MessageChannel* channel = nullptr;

  ReadOp read(char* buffer, size_t length, uint64_t deadline_ms) {
    if (channel) return ReadOp(channel->read(buffer, length, deadline_ms));
    return tls ? ReadOp(tls->read(buffer, length, deadline_ms))
               : ReadOp(socket.read(buffer, length, deadline_ms));
  }
  net::Task<bool> write_all(std::string_view a, std::string_view b, uint64_t deadline_ms) {
    if (channel) return channel->write_all(a, b, deadline_ms);
    return tls ? tls->write_all(a, b, deadline_ms) : l7::write_all(socket, a, b, deadline_ms);
  }
};

// What a write of `written` bytes of a then b left of them.
std::pair<std::string_view, std::string_view> unwritten(std::string_view a, std::string_view b,
                                                        size_t written);

// One direction of a WebSocket tunnel, known by the side it writes to.
struct TunnelFlow {
  enum class State : uint8_t {
    kRelaying,
    kStopped,     // by TunnelControl::end(): the side's stream ends after the last whole write
    kHalfClosed,  // the other side closed its sending half, passed on to this side
    kFailed,      // a read or write failed: both sides were shut
  };
  websocket::FrameTracker written;  // over the bytes this side has been sent
  bool writing = false;             // a write to this side is under way
  State state = State::kRelaying;
};

// What the worker holds of a WebSocket tunnel under way (SessionLink::tunnel), so that the
// drain's end can close it cleanly: each side whose stream stopped between two frames gets a
// Close frame (1001, Going Away), and both are then shut within kTunnelCloseMs.
struct TunnelControl {
  static constexpr uint64_t kTunnelCloseMs = 1000;

  TunnelControl(net::Reactor& r, uint32_t backend_mask) : reactor(r), mask(backend_mask) {}
  // Stops both directions (their reads are cancelled; a write under way finishes first, since a
  // cancelled write may have sent part of its bytes), then closes as above.
  void end();

  net::Reactor& reactor;
  uint32_t mask;  // of the Close frame sent to the backend
  bool ending = false;
  uint64_t end_deadline_ms = 0;
  net::Socket* sockets[2] = {};  // the client's and the backend's, while the tunnel runs
  TunnelFlow toward[2];          // to the client, to the backend
};

// Relays both directions until each has ended; idle_ms bounds inactivity per read. `a` is the
// client, `b` the backend; `control`, for a WebSocket tunnel, lets the worker end it.
net::Task<void> tunnel(Side a, Side b, net::BufferPool& buffers, uint64_t idle_ms,
                       TunnelControl* control = nullptr);

// Closes with RST so the peer cannot mistake a cut-off body for a complete one.
void abort_connection(net::Socket& socket);

}  // namespace usher::proxy::l7
