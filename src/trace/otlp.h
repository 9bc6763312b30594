#pragma once
// OTLP/HTTP with JSON encoding (the OTLP specification's stable protocol): an
// ExportTraceServiceRequest made of finished span records, and its POST to a collector.
#include <chrono>
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

// One POST of a JSON body on a connection of its own, with blocking calls bounded by one
// deadline. Connected first, so that a body is only made for a collector that is there.
// Exporter thread only: never use it on a worker.
class CollectorConnection {
 public:
  using Clock = std::chrono::steady_clock;
  CollectorConnection() = default;
  CollectorConnection(const CollectorConnection&) = delete;
  CollectorConnection& operator=(const CollectorConnection&) = delete;
  ~CollectorConnection();

  // kSent: connected.
  PostResult open(const Collector& collector, Clock::time_point deadline);
  // kSent: the collector answered 2xx.
  PostResult post(const Collector& collector, std::string_view body, Clock::time_point deadline);

 private:
  int fd_ = -1;
};

}  // namespace usher::trace
