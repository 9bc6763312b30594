#pragma once
// OTLP/HTTP with JSON encoding (the OTLP specification's stable protocol): an
// ExportTraceServiceRequest made of finished span records, and its POST to a collector.
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "base/address.h"
#include "trace/span.h"

namespace usher::trace {

// Appends {"resourceSpans":[...]} holding `spans`, with the resource attribute
// service.name = `service`. Ids are hex strings, times Unix nanoseconds as decimal strings, kinds
// and status codes numbers, as the OTLP JSON mapping asks.
void append_export_request(std::span<const SpanRecord> spans, std::string_view service,
                           std::string& out);

struct Collector {
  Address address;
  std::string authority;  // the Host field
  std::string path;
};

// How a POST ended; kSent: a 2xx came back.
enum class PostResult : uint8_t { kSent, kUnreachable, kTimedOut, kRefused };

// POSTs `body` (application/json) on a new connection with blocking calls bounded by
// `timeout_ms` in all. Exporter thread only: never call it from a worker.
PostResult post_json(const Collector& collector, std::string_view body, int timeout_ms);

}  // namespace usher::trace
