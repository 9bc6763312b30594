// libFuzzer target for the layer-4 codecs: PROXY protocol headers and TLS ClientHellos. Neither
// may crash or read out of bounds; beyond that:
// - a verdict never changes as more bytes come: a prefix of the input is kNeedMore or gets the
//   input's own verdict, and every prefix shorter than an accepted header is kNeedMore;
// - an accepted PROXY header written back by proxy_v1 and proxy_v2 parses to the same addresses
//   (a TCP4 line to the very same bytes), so what usher forwards says what it was told;
// - an accepted ClientHello re-cut into records of another size gives the same name and ALPN, as
//   a client splitting its hello cannot route elsewhere.
//
// Input: byte 0 picks the codec (bits 0-1: 0 ClientHello; 1, 2, 3 PROXY with v1, v2 or both
// accepted) and, for ClientHellos, the record size to re-cut into (bits 2-7); the rest is what
// the client sent.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "codec/l4/client_hello.h"
#include "codec/l4/proxy_protocol.h"

namespace {

using namespace usher::l4;

bool same_header(const ProxyHeader& a, const ProxyHeader& b) {
  return a.version == b.version && a.local == b.local && a.transport == b.transport &&
         a.source == b.source && a.destination == b.destination && a.alpn == b.alpn &&
         a.authority == b.authority && a.length == b.length;
}

// Prefixes of an input whose verdict is `whole`: every one shorter than an accepted header
// waits for more, and none decides otherwise. Prefixes are decided in constant time (v2) or
// from at most 107 bytes (v1), so all those up to an accepted header's end are tried, and for
// other verdicts those up to twice a v1 line and a few longer ones.
void check_proxy_prefixes(std::string_view input, ProxyVersions accept, const ProxyParse& whole) {
  const bool done = whole.status == ProxyStatus::kDone;
  const size_t all = std::min(input.size(), done ? whole.header.length + 1 : 2 * kProxyV1MaxLength);
  auto check = [&](size_t n) {
    const ProxyParse p = parse_proxy_header(input.substr(0, n), accept);
    if (done && n < whole.header.length) {
      if (p.status != ProxyStatus::kNeedMore) __builtin_trap();
    } else if (p.status != ProxyStatus::kNeedMore && p.status != whole.status) {
      __builtin_trap();
    } else if (p.status == ProxyStatus::kDone && !same_header(p.header, whole.header)) {
      __builtin_trap();
    }
  };
  for (size_t n = 0; n < all; ++n) check(n);
  for (size_t n : {input.size() / 2, input.size() - 1}) {
    if (n >= all && n < input.size()) check(n);
  }
}

// `written` parses alone to a header with the addresses of `h`.
void check_written(const std::string& written, const ProxyHeader& h) {
  const ProxyParse again = parse_proxy_header(written, {});
  if (again.status != ProxyStatus::kDone || again.header.length != written.size()) {
    __builtin_trap();
  }
  if (again.header.local != h.local || again.header.source != h.source ||
      again.header.destination != h.destination) {
    __builtin_trap();
  }
}

void fuzz_proxy(std::string_view input, ProxyVersions accept) {
  const ProxyParse p = parse_proxy_header(input, accept);
  check_proxy_prefixes(input, accept, p);
  if (p.status != ProxyStatus::kDone) return;
  const ProxyHeader& h = p.header;
  if (h.length > input.size() || (h.version == 1 && h.length > kProxyV1MaxLength) ||
      h.length > 16 + kProxyV2MaxBlock || h.local == h.source.has_value() ||
      (h.version == 1 && !accept.v1) || (h.version == 2 && !accept.v2)) {
    __builtin_trap();
  }
  if (h.local) {
    check_written(proxy_v2({}, {}, h.transport, h.alpn, h.authority), h);
    return;
  }
  const std::string one = proxy_v1(*h.source, *h.destination);
  check_written(one, h);
  // A dotted quad and a port have one spelling each, so a TCP4 line comes back byte for byte.
  if (h.version == 1 && h.source->family() == AF_INET && input.substr(0, h.length) != one) {
    __builtin_trap();
  }
  const std::string two = proxy_v2(*h.source, *h.destination, h.transport, h.alpn, h.authority);
  check_written(two, h);
  const ProxyParse again = parse_proxy_header(two, {});
  if (again.header.transport != h.transport) __builtin_trap();
  if (h.alpn.size() <= 255 && again.header.alpn != h.alpn) __builtin_trap();
  if (h.authority.size() <= 255 && again.header.authority != h.authority) __builtin_trap();
}

bool same_hello(const HelloPeek& a, const HelloPeek& b) {
  return a.status == b.status && a.server_name == b.server_name && a.alpn == b.alpn;
}

// The payloads of the input's records, as far as they go, cut again into records of `piece`
// bytes (fewer when that would take more records than a hello may use).
std::string recut(std::string_view input, size_t piece) {
  std::string payload;
  for (size_t pos = 0; pos + 5 <= input.size();) {
    const size_t length =
        size_t{static_cast<uint8_t>(input[pos + 3])} << 8 | static_cast<uint8_t>(input[pos + 4]);
    payload.append(input.substr(pos + 5, length));
    pos += 5 + length;
  }
  payload.resize(std::min(payload.size(), kMaxClientHello));  // the hello starts it, if anywhere
  piece = std::max(piece, (payload.size() + kMaxClientHelloRecords - 1) / kMaxClientHelloRecords);
  std::string out;
  for (size_t from = 0; from < payload.size(); from += piece) {
    const size_t n = std::min(piece, payload.size() - from);
    out += "\x16\x03\x01";
    out.push_back(static_cast<char>(n >> 8));
    out.push_back(static_cast<char>(n & 0xFF));
    out.append(payload, from, n);
  }
  return out;
}

void fuzz_client_hello(std::string_view input, size_t piece) {
  const HelloPeek p = peek_client_hello(input);
  // A partial hello is decided from its framing alone, so prefixes are cheap; a few will do.
  for (size_t n : {input.size() / 4, input.size() / 2, input.size() * 3 / 4, input.size() - 1}) {
    if (n >= input.size()) continue;
    const HelloPeek q = peek_client_hello(input.substr(0, n));
    if (q.status != HelloStatus::kNeedMore && !same_hello(q, p)) __builtin_trap();
  }
  if (p.status == HelloStatus::kError && p.error.rfind("ClientHello: byte ", 0) != 0) {
    __builtin_trap();
  }
  if (p.status != HelloStatus::kDone) return;
  for (char c : p.server_name) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_')) {
      __builtin_trap();
    }
  }
  for (const std::string& protocol : p.alpn) {
    if (protocol.empty() || protocol.size() > 255) __builtin_trap();
  }
  if (!same_hello(peek_client_hello(recut(input, piece)), p)) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const std::string_view input(reinterpret_cast<const char*>(data + 1), size - 1);
  const unsigned mode = data[0] & 3u;
  if (mode == 0) {
    fuzz_client_hello(input, 1 + (data[0] >> 2) * 8);
  } else {
    fuzz_proxy(input, {.v1 = (mode & 1u) != 0, .v2 = (mode & 2u) != 0});
  }
  return 0;
}
