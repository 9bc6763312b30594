#pragma once
// What usher tells about the requests it serves: the access log's sink and format, and tracing
// (W3C Trace Context, spans to an OTLP collector). Part of config.h's Config.
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "base/address.h"
#include "base/duration.h"

namespace usher::config {

// One line per request, written off the workers.
struct AccessLog {
  enum class Target : uint8_t { kOff, kStdout, kFile };
  enum class Format : uint8_t { kJson, kCombined };
  Target target = Target::kOff;
  std::string path;  // for kFile
  Format format = Format::kJson;
};

// `access_log`: off | stdout | PATH. The problem, or empty.
std::string set_access_log_target(std::string_view text, AccessLog& out);

// `tracing: { otlp, sample, slow }`: W3C Trace Context for HTTP requests sent to pools, and
// their spans exported as OTLP/HTTP JSON to one collector (src/trace).
struct Tracing {
  std::string otlp;       // the collector's URL as written: http://HOST:PORT/PATH
  Address collector;      // where the exporter connects (numeric, or localhost)
  std::string authority;  // HOST:PORT as written, for the Host field
  std::string path;       // /v1/traces when the URL names none
  double sample = 1.0;    // share of new traces sampled; a client's sampled flag overrides it
  Millis slow = std::chrono::seconds(1);  // a request this slow is exported whatever was sampled
};
// An OTLP/HTTP collector URL into `out`'s collector, authority and path; the problem, or empty.
std::string set_otlp_url(std::string_view url, Tracing& out);

}  // namespace usher::config
