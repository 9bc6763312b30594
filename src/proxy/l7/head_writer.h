#pragma once
// Serialises the heads usher forwards: hop-by-hop fields removed (RFC 9110 §7.6.1), framing
// re-emitted in one normalised form, forwarding fields and the route's header edits applied.
// Writes into a caller buffer with no allocation.
#include <string_view>

#include "codec/http1/message.h"
#include "config/config.h"

namespace usher::proxy::l7 {

// What an HTTPS connection negotiated; all empty on plain HTTP.
struct TlsFacts {
  std::string_view version;
  std::string_view cipher;
  std::string_view sni;
  std::string_view client_subject;  // client_auth only
};

// The values ${...} in header edits stand for.
struct TemplateValues {
  std::string_view client_ip;
  std::string_view request_id;
  std::string_view backend;
  TlsFacts tls;
  std::string_view geo_country;  // looked up only for a policy that uses it
};

// The sticky cookie as it travels: removed from requests (insert mode) or unprefixed (prefix
// mode, "id~value" -> "value").
struct StickyCookie {
  std::string_view name;
  bool prefix_mode = false;
};

struct RequestRewrite {
  std::string_view peer_ip;     // the connection's peer, appended to X-Forwarded-For
  bool trusted_peer = false;    // keep and extend the peer's X-Forwarded-* and Forwarded fields
  bool forwarded = false;       // write RFC 7239 Forwarded
  std::string_view port;        // the listener's port, for X-Forwarded-Port
  bool https = false;           // the client spoke TLS to usher
  std::string_view request_id;  // when set, replaces any X-Request-Id
  size_t strip = 0;             // leading target bytes replaced by new_prefix
  std::string_view new_prefix;
  StickyCookie sticky;
  const config::HeaderPolicy* edits = nullptr;
  TemplateValues values;
  bool strip_expect = false;  // usher answers 100-continue itself
  // When set (tracing), replaces the client's traceparent and tracestate fields, written
  // first after the request line, where a retry rewrites the span id in place.
  std::string_view traceparent;
  std::string_view tracestate;  // empty: none is sent
};

// Returns bytes written, 0 if out is too small.
size_t write_request_head(const http1::RequestHead& head, const RequestRewrite& rewrite, char* out,
                          size_t capacity);

struct ResponseRewrite {
  bool client_keep_alive = true;
  bool client_http10 = false;
  bool dechunk = false;  // the body is sent decoded and delimited by close (HTTP/1.0 clients)
  bool interim = false;  // a 1xx before the final response: no edits, no cookies
  std::string_view set_cookie;    // a whole "Set-Cookie: ...\r\n" line to add (sticky insert)
  std::string_view extra_fields;  // whole lines of usher's own to add (X-Usher-Pick)
  StickyCookie sticky_prefix;     // prefix mode: the application's cookie gets "id~" in front
  std::string_view backend_id;
  std::string_view request_id;  // echoed as X-Request-Id
  const config::HeaderPolicy* edits = nullptr;
  TemplateValues values;
};

size_t write_response_head(const http1::ResponseHead& head, const ResponseRewrite& rewrite,
                           char* out, size_t capacity);

}  // namespace usher::proxy::l7
