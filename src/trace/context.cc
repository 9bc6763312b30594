#include "trace/context.h"

#include <bit>
#include <cmath>
#include <cstring>
#include <random>

namespace usher::trace {

namespace {

// A lowercase hex digit's value, or -1: the spec allows no uppercase.
int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

// Lowercase hex digits (at most 16) into `out`.
bool read_hex(std::string_view text, uint64_t& out) {
  uint64_t value = 0;
  for (char c : text) {
    const int digit = hex_digit(c);
    if (digit < 0) return false;
    value = value << 4 | static_cast<uint64_t>(digit);
  }
  out = value;
  return true;
}

std::string_view trim_ows(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

}  // namespace

IdGenerator::IdGenerator() {
  std::random_device device;
  do {
    for (uint64_t& word : s_) word = uint64_t{device()} << 32 | device();
  } while ((s_[0] | s_[1] | s_[2] | s_[3]) == 0);
}

std::optional<Parent> parse_traceparent(std::string_view value) {
  // version "-" trace-id "-" parent-id "-" trace-flags
  if (value.size() < kTraceparentLength) return std::nullopt;
  uint64_t version = 0;
  if (!read_hex(value.substr(0, 2), version) || version == 0xff) return std::nullopt;
  if (version == 0 ? value.size() != kTraceparentLength
                   : value.size() > kTraceparentLength && value[kTraceparentLength] != '-') {
    return std::nullopt;
  }
  if (value[2] != '-' || value[35] != '-' || value[52] != '-') return std::nullopt;
  Parent p;
  uint64_t flags = 0;
  if (!read_hex(value.substr(3, 16), p.trace.high) ||
      !read_hex(value.substr(19, 16), p.trace.low) || !read_hex(value.substr(36, 16), p.span) ||
      !read_hex(value.substr(53, 2), flags)) {
    return std::nullopt;
  }
  if (!p.trace.valid() || p.span == 0) return std::nullopt;
  p.flags = static_cast<uint8_t>(flags);
  return p;
}

// Eight hex digits of a 32-bit value at once: each nibble spread into a byte of its own, most
// significant first in memory, then turned into '0'-'9' or 'a'-'f' without a branch.
uint64_t hex8(uint32_t value) {
  static_assert(std::endian::native == std::endian::little);
  uint64_t x = value;
  x = ((x & 0xffff0000u) << 16) | (x & 0xffffu);
  x = ((x & 0x0000ff000000ff00u) << 8) | (x & 0x000000ff000000ffu);
  x = ((x & 0x00f000f000f000f0u) << 4) | (x & 0x000f000f000f000fu);
  x = __builtin_bswap64(x);
  const uint64_t letters = ((x + 0x0606060606060606u) >> 4) & 0x0101010101010101u;
  return x + 0x3030303030303030u + letters * ('a' - '0' - 10);
}

void write_hex(uint64_t value, char* out) {
  const uint64_t high = hex8(static_cast<uint32_t>(value >> 32));
  const uint64_t low = hex8(static_cast<uint32_t>(value));
  std::memcpy(out, &high, 8);
  std::memcpy(out + 8, &low, 8);
}

void write_traceparent(const TraceId& trace, uint64_t span, bool sampled,
                       char (&out)[kTraceparentLength]) {
  std::memcpy(out, "00-", 3);
  write_hex(trace.high, out + 3);
  write_hex(trace.low, out + 19);
  out[35] = '-';
  write_hex(span, out + kSpanIdOffset);
  std::memcpy(out + 52, sampled ? "-01" : "-00", 3);
}

size_t bound_tracestate(std::span<const std::string_view> fields, char* out) {
  size_t total = 0;
  size_t members = 0;
  for (std::string_view field : fields) {
    total += field.size();
    members += !field.empty();
  }
  // The common case: one short list, passed on exactly as it came.
  if (total + (members ? members - 1 : 0) <= kMaxTracestate) {
    size_t n = 0;
    for (std::string_view field : fields) {
      if (field.empty()) continue;
      if (n) out[n++] = ',';
      std::memcpy(out + n, field.data(), field.size());
      n += field.size();
    }
    return n;
  }
  // Too long: members longer than kLongTracestateMember go, then members from the right
  // until the rest fits.
  size_t n = 0;
  for (std::string_view field : fields) {
    while (!field.empty()) {
      const size_t comma = field.find(',');
      const std::string_view member = trim_ows(field.substr(0, comma));
      field = comma == std::string_view::npos ? std::string_view() : field.substr(comma + 1);
      if (member.empty() || member.size() > kLongTracestateMember) continue;
      if (n + (n ? 1 : 0) + member.size() > kMaxTracestate) return n;
      if (n) out[n++] = ',';
      std::memcpy(out + n, member.data(), member.size());
      n += member.size();
    }
  }
  return n;
}

bool sampled_at_start(const std::optional<Parent>& parent, const TraceId& trace, double ratio) {
  if (parent) return parent->sampled();
  if (ratio >= 1) return true;
  if (ratio <= 0) return false;
  // ratio x 2^64 as the bound for the id's low half.
  const auto bound = static_cast<uint64_t>(std::ldexp(ratio, 64));
  return trace.low < bound;
}

bool exported_at_end(bool sampled, int status, double seconds, double slow_seconds) {
  return sampled || status >= 500 || seconds >= slow_seconds;
}

}  // namespace usher::trace
