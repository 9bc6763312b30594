#pragma once
// How far a client connection strays in ways HTTP/2 allows one at a time but floods repeat:
// streams it resets before they were answered (rapid reset, CVE-2023-44487), DATA frames with no
// data that do not end a stream, SETTINGS, PING and PRIORITY frames. Each costs a point; points
// drain at `drain_per_second`; past `limit` the connection is ended with GOAWAY
// (ENHANCE_YOUR_CALM). HAProxy counts the same "glitches"; the score is its idea, kept as a leaky
// bucket so that a long-lived, well-behaved connection never accumulates toward the limit.
#include <algorithm>
#include <cstdint>

namespace usher::http2 {

enum class Glitch : uint8_t { kResetUnanswered, kEmptyData, kSettings, kPing, kPriority };

class GlitchScore {
 public:
  GlitchScore(uint32_t limit, uint32_t drain_per_second)
      : limit_(limit), drain_per_ms_(drain_per_second / 1000.0) {}

  // True once the score passes the limit (and from then on).
  bool add(Glitch kind, uint64_t now_ms) {
    const double drained = static_cast<double>(now_ms - last_ms_) * drain_per_ms_;
    score_ = std::max(0.0, score_ - drained);
    last_ms_ = now_ms;
    score_ += 1;
    last_ = kind;
    return limit_ != 0 && score_ > limit_;
  }
  Glitch last() const { return last_; }

 private:
  uint32_t limit_;
  double drain_per_ms_;
  double score_ = 0;
  uint64_t last_ms_ = 0;
  Glitch last_ = Glitch::kResetUnanswered;
};

}  // namespace usher::http2
