// libFuzzer target for the HTTP/1 codec: request and response heads, then bodies, fed in the
// pieces a socket might deliver. The parser must never crash, read out of bounds or accept a
// head whose views leave the input.
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "codec/http1/body.h"
#include "codec/http1/head_parser.h"

namespace {

using namespace usher::http1;

void check_views_inside(std::string_view input, std::span<Header> headers) {
  for (const Header& h : headers) {
    if (h.name.data() < input.data() ||
        h.value.data() + h.value.size() > input.data() + input.size()) {
      __builtin_trap();
    }
  }
}

void decode_body(const Framing& framing, std::string_view rest, size_t piece) {
  BodyDecoder decoder(framing);
  while (!rest.empty() && !decoder.done()) {
    std::string_view window = rest.substr(0, piece);
    BodyStep step;
    if (decoder.feed(window, step) == ParseStatus::kError) return;
    if (step.consumed > window.size() || step.data_offset + step.data_length > step.consumed) {
      __builtin_trap();
    }
    if (step.consumed == 0 && !decoder.done()) __builtin_trap();  // no progress: a hang
    rest.remove_prefix(step.consumed);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  // The first byte picks how the input is split into arrivals.
  size_t piece = 1 + data[0] % 64;
  std::string_view input(reinterpret_cast<const char*>(data + 1), size - 1);
  std::vector<Header> scratch(64);
  HeadLimits limits{256, 2048, 64};

  size_t scanned = 0;
  RequestHead request;
  ParseError error;
  ParseStatus status = ParseStatus::kIncomplete;
  for (size_t n = std::min(piece, input.size()); status == ParseStatus::kIncomplete; n += piece) {
    n = std::min(n, input.size());
    status = parse_request(input.substr(0, n), limits, scratch, scanned, request, error);
    if (n == input.size()) break;
  }
  if (status == ParseStatus::kComplete) {
    check_views_inside(input, request.headers);
    if (request.head_bytes > input.size()) __builtin_trap();
    decode_body(request.framing, input.substr(request.head_bytes), piece);
  }

  scanned = 0;
  ResponseHead response;
  if (parse_response(input, limits, scratch, Method::kGet, scanned, response, error) ==
      ParseStatus::kComplete) {
    check_views_inside(input, response.headers);
    decode_body(response.framing, input.substr(response.head_bytes), piece);
  }
  return 0;
}
