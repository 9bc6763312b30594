#pragma once
// Serialises the heads usher forwards: hop-by-hop fields removed (RFC 9110 §7.6.1), framing
// re-emitted in one normalised form, forwarding fields added. Writes into a caller buffer with
// no allocation; returns false when the head does not fit.
#include <string_view>

#include "codec/http1/message.h"

namespace usher::proxy::l7 {

struct RequestRewrite {
  std::string_view client_ip;
  bool strip_expect = false;  // usher answers 100-continue itself
};

// Returns bytes written, 0 if out is too small.
size_t write_request_head(const http1::RequestHead& head, const RequestRewrite& rewrite, char* out,
                          size_t capacity);

struct ResponseRewrite {
  bool client_keep_alive = true;
  bool client_http10 = false;
  bool dechunk = false;  // the body is sent decoded and delimited by close (HTTP/1.0 clients)
};

size_t write_response_head(const http1::ResponseHead& head, const ResponseRewrite& rewrite,
                           char* out, size_t capacity);

}  // namespace usher::proxy::l7
