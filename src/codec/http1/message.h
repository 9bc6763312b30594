#pragma once
// Parsed HTTP/1 message heads. Views point into the caller's receive buffer and are valid only
// until that buffer changes: the proxy serialises a head before it reads again.
#include <cstdint>
#include <span>
#include <string_view>

namespace usher::http1 {

// Headers the codec and proxy act on; everything else is kOther and forwarded as received.
enum class HeaderId : uint8_t {
  kOther,
  kHost,
  kContentLength,
  kTransferEncoding,
  kConnection,
  kKeepAlive,
  kProxyConnection,
  kTe,
  kUpgrade,
  kExpect,
  kXForwardedFor,
  kXForwardedProto,
  kVia,
  kTrailer,
  kIdempotencyKey,
  kCookie,
  kSetCookie,
  kXRequestId,
  kXForwardedHost,
  kXForwardedPort,
  kForwarded,
  kTraceparent,
  kTracestate,
};

struct Header {
  std::string_view name;
  std::string_view value;
  HeaderId id = HeaderId::kOther;
  bool connection_listed = false;  // named by a Connection header: hop-by-hop, never forwarded
};

enum class Method : uint8_t {
  kOther,
  kGet,
  kHead,
  kPost,
  kPut,
  kDelete,
  kOptions,
  kConnect,
  kTrace
};

struct Framing {
  enum class Kind : uint8_t { kNone, kLength, kChunked, kUntilClose };
  Kind kind = Kind::kNone;
  uint64_t length = 0;                // for kLength (a Content-Length of 0 is kLength too)
  std::string_view transfer_codings;  // normalised source list when chunked (e.g. "gzip, chunked")
};

struct RequestHead {
  std::string_view method_text;
  std::string_view target;
  Method method = Method::kOther;
  uint8_t version_minor = 1;
  std::span<Header> headers;
  Framing framing;
  bool keep_alive = true;  // the client wants the connection kept after this exchange
  bool expect_continue = false;
  bool upgrade = false;  // Connection: upgrade with an Upgrade header
  std::string_view upgrade_protocol;
  size_t head_bytes = 0;  // bytes of the buffer this head occupied (incl. leading CRLFs)
};

struct ResponseHead {
  int status = 0;
  uint8_t version_minor = 1;
  std::string_view reason;
  std::span<Header> headers;
  Framing framing;
  bool keep_alive = true;  // the backend allows reuse of the connection
  size_t head_bytes = 0;
};

enum class ParseStatus : uint8_t { kComplete, kIncomplete, kError };

struct ParseError {
  int http_status = 400;  // what a client is answered: 400, 414, 431, 501, 505; 502 for backends
  const char* reason = "";
  size_t offset = 0;  // byte offset in the buffer where the problem was seen
};

struct HeadLimits {
  size_t max_start_line = 8 * 1024;
  size_t max_head_bytes = 16 * 1024;
  size_t max_headers = 100;
};

}  // namespace usher::http1
