// libFuzzer target for the HTTP/2 translation (src/codec/http2): what usher writes from an
// HTTP/2 request is read again by its own strict HTTP/1 parser, so the translation must never
// make that parser see something other than the request:
// - the fields of a request, as nghttp2 delivers them (lowercase names, values without CR, LF
//   or NUL: its HTTP messaging checks refuse the rest), become a head that parses whole, to the
//   same method and target, or is refused; never a head followed by bytes of another request;
// - a chunked body fed in arbitrary slices gives the payload the HTTP/1 body decoder gives, and
//   the trailer section the decoder accepted.
//
// Input: byte 0 picks the case (even: request fields, odd: body); for fields, the rest is
// NUL-separated name/value pairs; for a body, byte 1 is the slice length and the rest the body.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "codec/http1/body.h"
#include "codec/http1/head_parser.h"
#include "codec/http2/outgoing_body.h"
#include "codec/http2/request_head.h"

namespace {

using namespace usher;

bool nghttp2_would_deliver(std::string_view name, std::string_view value) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    if (c >= 'A' && c <= 'Z') return false;
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f || (c == ':' && i > 0)) return false;
  }
  for (char c : value) {
    if (c == '\r' || c == '\n' || c == '\0') return false;
  }
  return value.empty() || (value.front() != ' ' && value.back() != ' ' && value.front() != '\t' &&
                           value.back() != '\t');
}

void check_fields(std::string_view input) {
  http2::RequestFields fields;
  std::vector<std::string_view> parts;
  while (!input.empty()) {
    const size_t end = input.find('\0');
    parts.push_back(input.substr(0, end));
    input.remove_prefix(end == std::string_view::npos ? input.size() : end + 1);
  }
  for (size_t i = 0; i + 1 < parts.size(); i += 2) {
    if (nghttp2_would_deliver(parts[i], parts[i + 1])) fields.add(parts[i], parts[i + 1]);
  }
  std::string head;
  const char* error = nullptr;
  if (!fields.write_head(parts.size() % 4 == 1, head, error)) return;
  std::vector<http1::Header> scratch(200);
  http1::RequestHead parsed;
  http1::ParseError parse_error;
  size_t scanned = 0;
  const auto status =
      http1::parse_request(head, http1::HeadLimits{}, scratch, scanned, parsed, parse_error);
  if (status == http1::ParseStatus::kIncomplete) std::abort();  // the head is whole or wrong
  if (status != http1::ParseStatus::kComplete) return;
  if (parsed.head_bytes != head.size()) std::abort();  // bytes of a second request
  if (parsed.method_text != fields.method()) std::abort();
}

void check_body(std::string_view input) {
  if (input.empty()) return;
  const size_t slice = static_cast<unsigned char>(input[0]) % 64 + 1;
  const std::string_view body = input.substr(1);
  const http1::Framing chunked{http1::Framing::Kind::kChunked, 0, {}};
  http1::BodyDecoder reference(chunked);
  std::string expected;
  std::string_view rest = body;
  while (!rest.empty() && !reference.done()) {
    http1::BodyStep step;
    if (reference.feed(rest, step) == http1::ParseStatus::kError) return;
    expected.append(rest.substr(step.data_offset, step.data_length));
    rest.remove_prefix(step.consumed);
  }
  http2::OutgoingBody out;
  out.start(chunked);
  for (size_t at = 0; at < body.size(); at += slice) {
    if (!out.feed(body.substr(at, slice))) std::abort();  // the whole was accepted above
  }
  if (out.whole() != reference.done()) std::abort();
  if (out.buffered() != expected.size()) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (data[0] % 2 == 0) {
    check_fields(input);
  } else {
    check_body(input);
  }
  return 0;
}
