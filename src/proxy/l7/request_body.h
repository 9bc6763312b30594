#pragma once
// Reading a request body from the client: the pace it must keep (limits.min_body_rate), and
// reading it whole before a backend is chosen (a pool's buffer_request), so that a malformed
// body reaches no backend and a buffered request may be sent again on a retry.
#include <cstddef>
#include <cstdint>
#include <string>

#include "codec/http1/body.h"
#include "config/config.h"
#include "net/task.h"
#include "proxy/l7/failure.h"
#include "proxy/l7/session.h"

namespace usher::proxy::l7 {

// Over each window, a body must bring at least bytes_per_second x window bytes (slow-body
// attacks keep a connection with a trickle that never trips an inactivity timeout).
class BodyPace {
 public:
  BodyPace(const config::Limits::MinBodyRate& rule, uint64_t now_ms);
  // When the current window ends (the latest a read may wait), or never (UINT64_MAX).
  uint64_t window_end() const { return window_end_; }
  // Counts bytes that arrived; at a window's end, false when the window fell short.
  bool keep(size_t bytes, uint64_t now_ms);
  // Time spent waiting for the backend to take bytes is not the client's: the window moves.
  void hold(uint64_t ms);

 private:
  uint64_t need_per_window_ = 0;  // 0: no minimum
  uint64_t window_ms_ = 0;
  uint64_t window_end_ = UINT64_MAX;
  uint64_t received_ = 0;
};

inline constexpr long kBodyTooSlow = -1'000'000;  // below min_body_rate

// Reads more request body bytes into c.in (which must be empty): bytes read, 0 when the client
// closed, -ETIMEDOUT after the body timeout of silence, kBodyTooSlow when the pace fell short.
net::Task<long> read_body_bytes(Client& c, BodyPace& pace);

// A request body read before any backend was chosen, as the client sent it (chunked stays
// chunked). `whole`: all of it; otherwise it was larger than buffer_request, and what is here
// goes first, then the rest streams from the client with `decoder` where reading stopped.
struct BufferedBody {
  std::string bytes;
  http1::BodyDecoder decoder;
  bool whole = false;
};

// Reads the body of the request in flight (up to `limit` bytes) into `out`; sends 100 Continue
// first when the client waits for it. A malformed body is a client failure (400).
net::Task<Failure> buffer_body(Client& c, const RequestInfo& info, size_t limit, BufferedBody& out,
                               bool& continue_sent);

}  // namespace usher::proxy::l7
