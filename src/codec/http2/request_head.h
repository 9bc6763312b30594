#pragma once
// An HTTP/2 request's header list (RFC 9113 section 8.3), as nghttp2 delivers it field by field,
// written as the HTTP/1.1 request head that usher's L7 path reads. nghttp2's HTTP messaging checks
// have already refused what RFC 9113 forbids (connection-specific fields, a TE other than
// "trailers", bad pseudo-header use, field values with CR, LF or NUL); what is left the HTTP/1
// parser checks again, so a request is judged one way whichever protocol carried it.
#include <cstdint>
#include <string>
#include <string_view>

namespace usher::http2 {

class RequestFields {
 public:
  void add(std::string_view name, std::string_view value);

  // The HTTP/1.1 head: the start line from :method and :path (the authority form for CONNECT),
  // Host from :authority (else the host field), cookie crumbs joined into one field (section
  // 8.2.3). `body_follows`: DATA may come after the HEADERS frame; without a content-length it is
  // then sent chunked. False, with `error` set, when the fields cannot make a request.
  bool write_head(bool body_follows, std::string& out, const char*& error) const;

  std::string_view method() const { return method_; }
  bool has_content_length() const { return content_length_; }
  std::string_view grpc_timeout() const { return grpc_timeout_; }
  bool grpc() const;

 private:
  std::string method_;
  std::string scheme_;
  std::string authority_;
  std::string path_;
  std::string host_;
  std::string cookie_;
  std::string content_type_;
  std::string grpc_timeout_;
  std::string fields_;  // the other fields as "name: value\r\n" lines
  bool content_length_ = false;
  bool extended_connect_ = false;  // :protocol (RFC 8441), which usher does not offer
};

// Whether a content-type is gRPC's (application/grpc, +proto, +json, with parameters).
bool grpc_content_type(std::string_view value);

// A grpc-timeout value (gRPC over HTTP/2: up to 8 digits and a unit, H M S m u n) in
// milliseconds, rounded up; -1 when malformed.
int64_t grpc_timeout_ms(std::string_view value);

}  // namespace usher::http2
