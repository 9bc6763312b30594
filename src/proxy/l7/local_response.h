#pragma once
// Responses usher answers itself on a route's behalf (redirects, fixed responses, no route),
// written into a caller buffer with no allocation.
#include <span>
#include <string_view>

namespace usher::proxy::l7 {

struct LocalResponse {
  int status = 200;
  std::string_view content_type;
  std::string_view body;
  std::span<const std::string_view> location;  // concatenated; empty: no Location
  std::string_view request_id;                 // echoed when set
  std::string_view fields;                     // more header lines, each ending in CRLF
  bool close = false;                          // Connection: close
  bool head_only = false;                      // a HEAD request: no body bytes
};

// Returns bytes written, 0 when out is too small.
size_t write_local_response(const LocalResponse& response, char* out, size_t capacity);

// The standard reason phrase of a status, or "Status" for one without.
std::string_view reason_phrase(int status);

}  // namespace usher::proxy::l7
