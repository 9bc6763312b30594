#include "proxy/l7/request_body.h"

#include <algorithm>
#include <cerrno>

#include "proxy/l7/client_io.h"
#include "proxy/l7/error_response.h"
#include "proxy/worker.h"

namespace usher::proxy::l7 {

BodyPace::BodyPace(const config::Limits::MinBodyRate& rule, uint64_t now_ms) {
  if (rule.bytes_per_second == 0) return;
  window_ms_ = static_cast<uint64_t>(rule.window.count());
  need_per_window_ = rule.bytes_per_second * window_ms_ / 1000;
  window_end_ = now_ms + window_ms_;
}

void BodyPace::hold(uint64_t ms) {
  if (window_end_ != UINT64_MAX) window_end_ += ms;
}

bool BodyPace::keep(size_t bytes, uint64_t now_ms) {
  received_ += bytes;
  if (now_ms < window_end_) return true;
  if (received_ < need_per_window_) return false;
  received_ = 0;
  window_end_ = now_ms + window_ms_;
  return true;
}

net::Task<long> read_body_bytes(Client& c, BodyPace& pace) {
  if (!c.in) c.in = c.worker.buffers().take();
  while (true) {
    const uint64_t idle_deadline = c.after(c.config().timeouts.body);
    const uint64_t deadline = std::min(idle_deadline, pace.window_end());
    char* tail = c.in.tail();  // compacts first: tail_room() after it
    const long n = co_await read_client(c, tail, c.in.tail_room(), deadline);
    if (n == 0 || (n < 0 && n != -ETIMEDOUT)) co_return n;  // gone: not too slow
    const uint64_t now = c.worker.reactor().now_ms();
    if (!pace.keep(n > 0 ? static_cast<size_t>(n) : 0, now)) co_return kBodyTooSlow;
    if (n == -ETIMEDOUT && now < idle_deadline) continue;  // only a window ended, on pace
    if (n > 0) c.in.commit(static_cast<size_t>(n));
    co_return n;
  }
}

net::Task<Failure> buffer_body(Client& c, const RequestInfo& info, size_t limit, BufferedBody& out,
                               bool& continue_sent) {
  using http1::ParseStatus;
  out.decoder = http1::BodyDecoder(http1::Framing{info.body_kind, info.body_length, {}});
  BodyPace pace(c.config().limits.min_body_rate, c.worker.reactor().now_ms());
  while (!out.decoder.done() && out.bytes.size() < limit) {
    if (c.in.empty()) {
      if (info.expect_continue && !continue_sent) {
        continue_sent = true;
        if (!co_await write_client(c, kContinueResponse, {}, c.after(c.config().timeouts.body)))
          co_return Failure::client_gone();
      }
      const long n = co_await read_body_bytes(c, pace);
      if (n == kBodyTooSlow) {
        c.current.guard = "body_rate";
        co_return Failure::client(408);
      }
      if (n <= 0) co_return Failure::client_gone();
    }
    // Never past the limit: what does not fit stays in c.in for the streaming that follows.
    if (out.bytes.empty() && info.body_kind == http1::Framing::Kind::kLength) {
      out.bytes.reserve(static_cast<size_t>(info.body_length));  // at most `limit` (the caller)
    }
    const std::string_view unread = c.unread().substr(0, limit - out.bytes.size());
    http1::BodyStep step;
    if (out.decoder.feed(unread, step) == ParseStatus::kError) co_return Failure::client(400);
    out.bytes.append(unread.substr(0, step.consumed));
    c.in.consume(step.consumed);
    c.current.bytes_received += step.consumed;
    if (step.consumed == 0 && !out.decoder.done()) break;  // the limit cut a framing element
  }
  out.whole = out.decoder.done();
  co_return Failure{};
}

}  // namespace usher::proxy::l7
