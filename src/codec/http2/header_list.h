#pragma once
// An HTTP/1.1 response head or trailer section (as usher's L7 path writes it for its client) as
// the header list of an HTTP/2 HEADERS frame: names lowercased (RFC 9113 section 8.2.1) and the
// connection-specific fields dropped (section 8.2.2), which in HTTP/2 the framing replaces.
#include <nghttp2/nghttp2.h>

#include <string>
#include <string_view>
#include <vector>

#include "codec/http1/message.h"

namespace usher::http2 {

class HeaderList {
 public:
  // :status and the fields of `head`.
  void assign_response(const http1::ResponseHead& head);
  // The lines of a chunked message's trailer section ("name: value\r\n" each, as the HTTP/1
  // body decoder has validated them); false if one has no colon.
  bool assign_trailers(std::string_view lines);
  // Fields usher adds of its own (grpc-status on its own errors).
  void add(std::string_view name, std::string_view value);
  void clear();

  // Valid until the list changes.
  const std::vector<nghttp2_nv>& entries();
  bool empty() const { return fields_.empty(); }

 private:
  struct Field {
    size_t name_at, name_length, value_at, value_length;
  };

  std::string text_;
  std::vector<Field> fields_;
  std::vector<nghttp2_nv> entries_;
};

// Limits for parsing heads usher wrote itself (its HTTP/1.1 form of an HTTP/2 message): they
// were bounded when received, so these only keep the parser's own bounds out of the way.
inline constexpr http1::HeadLimits kOwnHeadLimits{64 * 1024, 1 << 20, 4096};

// Whether an HTTP/1.1 field has no place in HTTP/2 (RFC 9113 section 8.2.2).
bool connection_specific(std::string_view name);

}  // namespace usher::http2
