#pragma once
// Counters and histograms for the request path. Each is written by exactly one thread (its
// worker's shard) and read by any: the write is a relaxed load and store, no atomic
// read-modify-write and no lock; readers merge the shards.
#include <atomic>
#include <cstdint>
#include <iterator>

namespace usher::metrics {

class Counter {
 public:
  void add(uint64_t n = 1) {
    value_.store(value_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  uint64_t read() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

// A count that goes up and down, written by one thread (a shard's part of a gauge).
class Level {
 public:
  void add(int64_t n) {
    value_.store(value_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  int64_t read() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<int64_t> value_{0};
};

// Upper bounds in seconds, from half a millisecond to ten seconds; one more bucket is +Inf.
inline constexpr double kBucketBounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                           0.1,    0.25,  0.5,    1,     2.5,  5,     10};
inline constexpr size_t kBuckets = std::size(kBucketBounds) + 1;

// Per-bucket (not cumulative) counts; the exposition makes them cumulative.
class Histogram {
 public:
  void observe(double seconds) {
    size_t i = 0;
    while (i < std::size(kBucketBounds) && seconds > kBucketBounds[i]) ++i;
    buckets_[i].add();
    sum_micros_.add(static_cast<uint64_t>(seconds * 1e6));
  }
  uint64_t bucket(size_t i) const { return buckets_[i].read(); }
  uint64_t sum_micros() const { return sum_micros_.read(); }

 private:
  Counter buckets_[kBuckets];
  Counter sum_micros_;
};

// Status classes 1xx..5xx as indices 0..4.
inline size_t status_class(int status) {
  return status >= 100 && status < 600 ? static_cast<size_t>(status / 100 - 1) : 4;
}
inline constexpr const char* kStatusClasses[] = {"1xx", "2xx", "3xx", "4xx", "5xx"};

// Why a try on a backend gave no usable response.
enum class UpstreamError : uint8_t { kConnect, kTimeout, kReset, kProtocol };
inline constexpr const char* kUpstreamErrors[] = {"connect", "timeout", "reset", "protocol"};
inline constexpr size_t kUpstreamErrorKinds = std::size(kUpstreamErrors);

// Why accepting a connection failed: the process or system ran out of descriptors, the kernel
// out of memory, or anything else.
enum class AcceptError : uint8_t { kFdLimit, kMemory, kOther };
inline constexpr const char* kAcceptErrors[] = {"fd_limit", "memory", "other"};
inline constexpr size_t kAcceptErrorKinds = std::size(kAcceptErrors);

struct BackendCounters {
  Counter responses[5];  // by status class of the backend's response
  Counter errors[kUpstreamErrorKinds];
  Counter bytes_sent;      // request bytes to the backend
  Counter bytes_received;  // response bytes from it
  Histogram first_byte;    // request start to the response head
  Histogram total;         // request start to the end of the response
};

// Why a TLS handshake failed (tls::HandshakeFailure, without kNone).
inline constexpr const char* kTlsFailures[] = {"timeout",          "closed",           "plain_http",
                                               "protocol_version", "no_shared_cipher", "other"};
inline constexpr size_t kTlsFailureKinds = std::size(kTlsFailures);

// Why a connection was closed at accept, before a byte was read from it (or, for
// proxy_header, before a byte after the PROXY header its balancer had to send and did not).
enum class Refusal : uint8_t { kDenied, kMaxConnections, kPerClient, kProxyHeader };
inline constexpr const char* kRefusals[] = {"denied", "max_connections", "per_client",
                                            "proxy_header"};
inline constexpr size_t kRefusalKinds = std::size(kRefusals);

// Why usher ended an HTTP/2 client connection (GOAWAY) or reset one of its streams.
enum class Http2Error : uint8_t {
  kProtocol,     // a framing or state error (PROTOCOL_ERROR)
  kCompression,  // a broken HPACK block
  kFlowControl,  // a window overrun
  kFrameSize,    // a frame larger than allowed
  kPreface,      // not the HTTP/2 connection preface
  kRapidReset,   // stream resets beyond reset_limit, or a glitch score mostly made of them
  kContinuationFlood,
  kHeaderListTooLarge,
  kSettingsFlood,
  kPingFlood,
  kEmptyDataFlood,
  kPriorityFlood,
  kAckFlood,  // the client does not read the acknowledgements it asks for
  kRefusedStream,
  kStreamError,     // a stream reset for breaking the protocol (a bad field, a wrong length)
  kTooManyStreams,  // a stream past max_concurrent_streams after the client acknowledged it
};
inline constexpr const char* kHttp2Errors[] = {
    "protocol",       "compression",    "flow_control",       "frame_size",
    "preface",        "rapid_reset",    "continuation_flood", "header_list_too_large",
    "settings_flood", "ping_flood",     "empty_data_flood",   "priority_flood",
    "ack_flood",      "refused_stream", "stream_error",       "too_many_streams"};
inline constexpr size_t kHttp2ErrorKinds = std::size(kHttp2Errors);

// What a pool's circuit breakers refused: a request with the queue full, a retry with
// max_pending_retries in flight.
enum class BreakerTrip : uint8_t { kQueueFull, kRetries };
inline constexpr const char* kBreakerTrips[] = {"queue_full", "retries"};
inline constexpr size_t kBreakerTripKinds = std::size(kBreakerTrips);

// How a tcp listener's connection ended: both sides closed (done), a side reset or failed
// (error), silence for timeouts.tcp_idle (idle), no route for the ClientHello's name
// (no_route), no backend could be reached (no_backend), the client sent a bad or untrusted
// PROXY header or ClientHello or nothing in time (bad_client).
enum class TcpEnd : uint8_t { kDone, kError, kIdle, kNoRoute, kNoBackend, kBadClient };
inline constexpr const char* kTcpEnds[] = {"done",     "error",      "idle",
                                           "no_route", "no_backend", "bad_client"};
inline constexpr size_t kTcpEndKinds = std::size(kTcpEnds);

// Datagrams a udp listener dropped: a new client beyond max_sessions, a client its allow/deny
// lists refuse, no usable backend for a new session, a send the kernel refused.
enum class UdpDrop : uint8_t { kMaxSessions, kDenied, kNoBackend, kSendFailed };
inline constexpr const char* kUdpDrops[] = {"max_sessions", "denied", "no_backend", "send_failed"};
inline constexpr size_t kUdpDropKinds = std::size(kUdpDrops);

struct TcpCounters {
  Counter ended[kTcpEndKinds];  // connections, by how they ended
  Level active;
  Counter bytes_from_clients;
  Counter bytes_to_clients;
  Counter spliced;  // directions that turned from copying to splice(2) (relay: auto)
};

struct UdpCounters {
  Counter sessions;  // started
  Level active_sessions;
  Counter datagrams_from_clients;
  Counter datagrams_to_clients;
  Counter bytes_from_clients;
  Counter bytes_to_clients;
  Counter dropped[kUdpDropKinds];
};

struct ListenerCounters {
  TcpCounters tcp;  // tcp listeners only
  UdpCounters udp;  // udp listeners only
  Counter connections;
  Counter tls_handshakes;  // completed
  Counter tls_failures[kTlsFailureKinds];
  Level open_connections;
  Counter responses[5];    // every answer to a client, errors before routing included
  Counter bytes_received;  // from clients
  Counter bytes_sent;      // to clients
  Counter accept_errors[kAcceptErrorKinds];
  Counter refused[kRefusalKinds];
  Counter rate_limited;  // answered 429 by the listener's own rate_limit
  Counter http2_connections;
  Counter http2_errors[kHttp2ErrorKinds];
  Counter requests_by_protocol[2];  // HTTP/1.x, HTTP/2
};

struct RouteCounters {
  Counter responses[5];  // what clients were answered, usher's own responses included
  Histogram duration;    // head received to response sent
  Counter rate_limited;  // answered 429
  Counter denied;        // answered 403 by the route's allow/deny lists
};

struct PoolCounters {
  Counter retries;
  Counter no_backend;  // answered 503: nothing usable
  Counter breaker_trips[kBreakerTripKinds];
  Counter queue_timeouts;  // answered 503 after waiting queue.timeout
  Level queue_depth;       // requests waiting now
  Histogram queue_wait;    // of every request that waited, served or not
};

}  // namespace usher::metrics
