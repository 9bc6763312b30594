#pragma once
// PROXY protocol v1 (text) and v2 (binary), after HAProxy's proxy-protocol.txt: the header a
// load balancer in front of usher sends first to say whom a connection is really from, and the
// one usher sends first to a backend. No sockets: bytes in, a header or an error out.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "base/address.h"

namespace usher::l4 {

// A v1 line is at most this long, CRLF included (the spec's worst case, "PROXY UNKNOWN" with
// two full IPv6 addresses): without a CRLF by then, the peer is not speaking v1.
inline constexpr size_t kProxyV1MaxLength = 107;
// The most a v2 header may announce after its 16 fixed bytes (addresses and TLVs). The spec
// allows 65535; real senders need a few hundred (216 for two AF_UNIX paths, plus ALPN, authority
// and TLS TLVs), and a bound lets a longer length field be refused on arrival, not buffered.
inline constexpr size_t kProxyV2MaxBlock = 2048;

struct ProxyVersions {
  bool v1 = true;
  bool v2 = true;
};

enum class Transport : uint8_t { kStream, kDatagram };

struct ProxyHeader {
  int version = 0;  // 1 or 2
  // No addresses to use: the connection's own endpoints are the real ones (v2 LOCAL, AF_UNSPEC
  // or AF_UNIX; v1 UNKNOWN). source and destination are then empty.
  bool local = false;
  Transport transport = Transport::kStream;  // v1 and AF_UNSPEC say nothing: kStream
  std::optional<Address> source;
  std::optional<Address> destination;
  std::string alpn;       // v2 TLV 0x01, as sent; empty when absent
  std::string authority;  // v2 TLV 0x02 (the client's SNI), as sent; empty when absent
  size_t length = 0;      // bytes the header takes at the start of the input
};

enum class ProxyStatus : uint8_t { kNeedMore, kDone, kError };

struct ProxyParse {
  ProxyStatus status = ProxyStatus::kNeedMore;
  ProxyHeader header;  // when kDone
  std::string error;   // when kError: "PROXY header: byte N: why"
};

// Reads the header at the start of `bytes` (all bytes received so far; call again with more on
// kNeedMore). kError comes as soon as the bytes cannot begin a header of an accepted version (a
// v1 IPv6 address is judged once whole), so a peer that sends none is refused on its first
// bytes. v2 TLVs must lie inside the header; a CRC32c one is verified, unknown ones skipped.
ProxyParse parse_proxy_header(std::string_view bytes, ProxyVersions accept);

// The v1 line for a connection from `source` to `destination`: TCP4 or TCP6, or UNKNOWN when
// the two are not both IPv4 or both IPv6.
std::string proxy_v1(const Address& source, const Address& destination);

// The v2 header, with ALPN and authority TLVs when given (each at most 255 bytes, as TLS bounds
// them; a longer one is left out). An IPv4 address beside an IPv6 one is written IPv4-mapped.
std::string proxy_v2(const Address& source, const Address& destination, Transport transport,
                     std::string_view alpn = {}, std::string_view authority = {});

}  // namespace usher::l4
