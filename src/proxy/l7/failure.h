#pragma once
// How a step of forwarding a request failed, as one value for every step: whose side failed,
// what the client is told, and whether the request may be sent again (to another backend, or
// on a fresh connection). The retry decision reads the same fields whatever step failed.
#include <cstdint>

#include "metrics/counters.h"

namespace usher::proxy::l7 {

struct Failure {
  enum class Side : uint8_t { kNone, kClient, kUpstream, kInternal };
  // Upstream causes, for the error counters and the retry rules.
  enum class Cause : uint8_t {
    kNone,
    kConnect,   // no connection: nothing was sent
    kStale,     // closed before a byte of response on a reused connection: its idle timeout
    kReset,     // closed or reset before the response was whole
    kTimeout,   // no response head in time
    kProtocol,  // a response usher refuses to relay (ambiguous framing, ...)
    kStatus,    // a response status the route retries on
  };

  Side side = Side::kNone;
  Cause cause = Cause::kNone;
  int status = 0;           // what the client is told; 0 when nobody is left to tell
  bool retry_safe = false;  // another try may follow (the rules and the request allow it)

  explicit operator bool() const { return side != Side::kNone; }

  static Failure client_gone() { return {Side::kClient, Cause::kNone, 0, false}; }
  static Failure client(int status) { return {Side::kClient, Cause::kNone, status, false}; }
  static Failure upstream(Cause cause, int status, bool retry_safe) {
    return {Side::kUpstream, cause, status, retry_safe};
  }
  static Failure internal(int status) { return {Side::kInternal, Cause::kNone, status, false}; }
};

// The error counter a failed try counts in; none for a response that came (counted by status).
inline bool upstream_error_kind(Failure::Cause cause, metrics::UpstreamError& kind) {
  switch (cause) {
    case Failure::Cause::kConnect:
      kind = metrics::UpstreamError::kConnect;
      return true;
    case Failure::Cause::kTimeout:
      kind = metrics::UpstreamError::kTimeout;
      return true;
    case Failure::Cause::kStale:
    case Failure::Cause::kReset:
      kind = metrics::UpstreamError::kReset;
      return true;
    case Failure::Cause::kProtocol:
      kind = metrics::UpstreamError::kProtocol;
      return true;
    case Failure::Cause::kNone:
    case Failure::Cause::kStatus:
      return false;
  }
  return false;
}

}  // namespace usher::proxy::l7
