#pragma once
// HTTP/2 toward clients: one connection's frames in and out, each stream's request served by
// the L7 path as if it had come over HTTP/1.1 (proxy/l7), so that routing, retries, sticky
// cookies, header policy, protection, logs and metrics behave the same. Worker thread only.
#include <string_view>

#include "net/task.h"

namespace usher::proxy::l7 {
struct Client;
}

namespace usher::proxy::h2 {

// Whether a plain connection's first bytes are the HTTP/2 client connection preface, or so far
// a start of it: no HTTP/1 request begins with "PRI" (RFC 9113 section 3.4 reserves it).
inline bool starts_preface(std::string_view bytes) {
  constexpr std::string_view kPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
  return bytes.size() >= 3 && (bytes.starts_with(kPreface) || kPreface.starts_with(bytes));
}

// Serves the connection until it ends: `connection` holds its socket, TLS stream and peer, and
// in `in` any bytes already read (the preface, for h2c with prior knowledge).
net::Task<void> serve_http2(l7::Client& connection);

}  // namespace usher::proxy::h2
