#pragma once
// W3C Trace Context (https://www.w3.org/TR/trace-context/): the `traceparent` a request brings,
// the one usher sends its backend, `tracestate` within its bound, and whether a trace is
// sampled. Pure: no clock, no I/O, no allocation.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

namespace usher::trace {

struct TraceId {
  uint64_t high = 0;
  uint64_t low = 0;
  bool valid() const { return (high | low) != 0; }
  bool operator==(const TraceId&) const = default;
};

// Trace and span ids: xoshiro256** (a few ns an id), seeded once with 256 bits from
// std::random_device, never 0. One per worker: not thread-safe.
class IdGenerator {
 public:
  IdGenerator();
  uint64_t next() {
    uint64_t id;
    do {
      id = step();
    } while (id == 0);
    return id;
  }

 private:
  static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t step() {
    const uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }
  uint64_t s_[4];
};

// A valid `traceparent`: the caller's trace, its span (our parent), and its flags.
struct Parent {
  TraceId trace;
  uint64_t span = 0;
  uint8_t flags = 0;
  bool sampled() const { return flags & 1; }
};

// The value of one `traceparent` field, strictly: lowercase hex, version 00 exactly 55
// characters; a later version (not ff) at least that, its next character a '-'; trace and
// parent ids not all zero. Anything else is nullopt, and the request starts a new trace.
std::optional<Parent> parse_traceparent(std::string_view value);

// "00-<32 hex trace>-<16 hex span>-<flags>", the only version usher writes.
inline constexpr size_t kTraceparentLength = 55;
// Where the span id starts in it: a retry rewrites just those 16 characters.
inline constexpr size_t kSpanIdOffset = 36;
void write_traceparent(const TraceId& trace, uint64_t span, bool sampled,
                       char (&out)[kTraceparentLength]);
// Lowercase hex, most significant digit first: 16 characters.
void write_hex(uint64_t value, char* out);

// The spec asks that at least 512 characters of `tracestate` travel on; longer lists lose
// members longer than 128 characters first, then members from the right (§3.3.1.5).
inline constexpr size_t kMaxTracestate = 512;
inline constexpr size_t kLongTracestateMember = 128;
// The `tracestate` fields of a request joined as one list, bounded so. Returns its length;
// `out` holds kMaxTracestate bytes.
size_t bound_tracestate(std::span<const std::string_view> fields, char* out);

// Whether a request starts sampled. A valid parent's sampled flag decides (parent-based);
// otherwise `ratio` of new traces are, chosen by the trace id's low 64 bits as OpenTelemetry's
// TraceIdRatioBased sampler does, so that every process sampling by ratio agrees on a trace.
bool sampled_at_start(const std::optional<Parent>& parent, const TraceId& trace, double ratio);

// Whether a finished request's spans are exported: sampled ones, and whatever was sampled,
// those that failed (a 5xx, from a backend or usher's own) or took `slow_seconds` or longer.
bool exported_at_end(bool sampled, int status, double seconds, double slow_seconds);

}  // namespace usher::trace
