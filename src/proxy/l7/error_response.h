#pragma once
// The complete responses usher itself sends (errors and interim replies), built once at start.
#include <string_view>

namespace usher::proxy::l7 {

// A full "HTTP/1.1 NNN ..." response with a short text body and Connection: close.
std::string_view error_response(int status);

// The 400 for a plain HTTP request sent to an HTTPS listener (nginx's 497, as a 400).
std::string_view plain_http_on_tls_response();

inline constexpr std::string_view kContinueResponse = "HTTP/1.1 100 Continue\r\n\r\n";

}  // namespace usher::proxy::l7
