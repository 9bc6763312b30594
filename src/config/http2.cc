// A listener's `http2:` block: on or off, or the limits that bound what one client connection may
// make usher hold (streams, windows, header lists) and how much misbehaviour ends it.
#include "config/reader.h"

namespace usher::config {

namespace {

void read_size_u32(Reader& r, const YAML::Node& node, const char* what, size_t min, size_t max,
                   uint32_t& out) {
  size_t value = out;
  r.size(node, what, value);
  if (value < min || value > max) {
    r.error(node.Mark(), std::string(what) + " must be from " + std::to_string(min) + " to " +
                             std::to_string(max) + " bytes");
    return;
  }
  out = static_cast<uint32_t>(value);
}

void read_reset_limit(Reader& r, const YAML::Node& node, Http2& out) {
  if (!r.expect_map(node, "reset_limit")) return;
  r.check_keys(node, {"burst", "per_second"}, "reset_limit");
  unsigned value = 0;
  if (node["burst"]) {
    r.unsigned_number(node["burst"], "reset_limit.burst", 1, 1'000'000, value);
    if (value) out.reset_burst = value;
  }
  value = 0;
  if (node["per_second"]) {
    r.unsigned_number(node["per_second"], "reset_limit.per_second", 1, 1'000'000, value);
    if (value) out.reset_per_second = value;
  }
}

}  // namespace

void read_http2(Reader& r, const YAML::Node& node, Http2& out) {
  out.marks.set("", Reader::position(node));
  if (node.IsScalar()) return read_flag(r, node, "http2", out.enabled);
  if (!r.expect_map(node, "http2")) return;
  r.check_keys(
      node,
      {"enabled", "max_concurrent_streams", "stream_window", "connection_window", "max_header_list",
       "max_continuations", "reset_limit", "glitch_limit", "glitch_drain_per_second"},
      "http2");
  if (node["enabled"]) read_flag(r, node["enabled"], "http2.enabled", out.enabled);
  unsigned value = 0;
  if (node["max_concurrent_streams"]) {
    r.unsigned_number(node["max_concurrent_streams"], "max_concurrent_streams", 1, 10000, value);
    if (value) out.max_concurrent_streams = value;
  }
  // RFC 9113 section 6.9.2: windows above 2^31-1 are a flow-control error.
  constexpr size_t kMaxWindow = (1u << 31) - 1;
  if (node["stream_window"]) {
    read_size_u32(r, node["stream_window"], "stream_window", 16384, kMaxWindow, out.stream_window);
  }
  if (node["connection_window"]) {
    read_size_u32(r, node["connection_window"], "connection_window", 65535, kMaxWindow,
                  out.connection_window);
  }
  if (node["max_header_list"]) {
    read_size_u32(r, node["max_header_list"], "max_header_list", 1024, 1 << 24,
                  out.max_header_list);
  }
  if (node["max_continuations"]) {
    value = out.max_continuations;
    r.unsigned_number(node["max_continuations"], "max_continuations", 0, 1000, value);
    out.max_continuations = value;
  }
  if (node["reset_limit"]) read_reset_limit(r, node["reset_limit"], out);
  if (node["glitch_limit"]) {
    value = out.glitch_limit;
    r.unsigned_number(node["glitch_limit"], "glitch_limit", 0, 1'000'000, value);
    out.glitch_limit = value;
  }
  if (node["glitch_drain_per_second"]) {
    value = out.glitch_drain_per_second;
    r.unsigned_number(node["glitch_drain_per_second"], "glitch_drain_per_second", 0, 1'000'000,
                      value);
    out.glitch_drain_per_second = value;
  }
}

}  // namespace usher::config
