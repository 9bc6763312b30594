#include "codec/l4/proxy_protocol.h"

#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <utility>

#include "codec/l4/proxy_v1_line.h"

namespace usher::l4 {

namespace {

constexpr char kV2Signature[] = "\r\n\r\n\0\r\nQUIT\n";
constexpr size_t kV2SignatureLength = 12;
constexpr size_t kV2FixedLength = 16;  // signature, version and command, family, length

constexpr uint8_t kCommandLocal = 0x0;
constexpr uint8_t kCommandProxy = 0x1;

constexpr uint8_t kTlvAlpn = 0x01;
constexpr uint8_t kTlvAuthority = 0x02;
constexpr uint8_t kTlvCrc32c = 0x03;
constexpr size_t kMaxTlvValueWritten = 255;

// The address block of each family and protocol byte the spec defines (every other value must
// be refused). AF_UNIX blocks hold two 108-byte paths.
struct V2Family {
  uint8_t byte;
  int family;  // AF_UNSPEC, AF_INET, AF_INET6 or AF_UNIX
  Transport transport;
  size_t address_length;
};
constexpr V2Family kV2Families[] = {
    {0x00, AF_UNSPEC, Transport::kStream, 0},   {0x11, AF_INET, Transport::kStream, 12},
    {0x12, AF_INET, Transport::kDatagram, 12},  {0x21, AF_INET6, Transport::kStream, 36},
    {0x22, AF_INET6, Transport::kDatagram, 36}, {0x31, AF_UNIX, Transport::kStream, 216},
    {0x32, AF_UNIX, Transport::kDatagram, 216},
};

const V2Family* find_family(uint8_t byte) {
  for (const V2Family& f : kV2Families) {
    if (f.byte == byte) return &f;
  }
  return nullptr;
}

constexpr auto kCrc32cTable = [] {
  std::array<uint32_t, 256> table{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1u)));
    table[i] = c;
  }
  return table;
}();

// Castagnoli CRC, reflected, as iSCSI and the spec's PP2_TYPE_CRC32C use it. Start and end
// with the state inverted: crc32c(x) == ~crc32c_update(~0u, x).
uint32_t crc32c_update(uint32_t crc, std::string_view bytes) {
  for (unsigned char b : bytes) crc = kCrc32cTable[(crc ^ b) & 0xFFu] ^ (crc >> 8);
  return crc;
}

uint8_t byte_at(std::string_view bytes, size_t i) {
  return static_cast<uint8_t>(bytes[i]);
}

size_t u16_at(std::string_view bytes, size_t i) {
  return static_cast<size_t>(byte_at(bytes, i)) << 8 | byte_at(bytes, i + 1);
}

ProxyParse failure(size_t offset, std::string_view why) {
  ProxyParse parse;
  parse.status = ProxyStatus::kError;
  parse.error = "PROXY header: byte " + std::to_string(offset) + ": " + std::string(why);
  return parse;
}

std::string hex_byte(uint8_t b) {
  constexpr char kDigits[] = "0123456789abcdef";
  return {'0', 'x', kDigits[b >> 4], kDigits[b & 0xF]};
}

// `address` and `port` point at network-order bytes of the block.
Address v4_address(const char* address, const char* port) {
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  std::memcpy(&sa.sin_addr, address, 4);
  std::memcpy(&sa.sin_port, port, 2);
  return Address::from_sockaddr(reinterpret_cast<const sockaddr*>(&sa), sizeof sa);
}

Address v6_address(const char* address, const char* port) {
  sockaddr_in6 sa{};
  sa.sin6_family = AF_INET6;
  std::memcpy(&sa.sin6_addr, address, 16);
  std::memcpy(&sa.sin6_port, port, 2);
  return Address::from_sockaddr(reinterpret_cast<const sockaddr*>(&sa), sizeof sa);
}

// The TLVs of a complete v2 header, from `pos` to its end. Each one must lie inside the block:
// a reader that stopped at the block's end and one that trusted the TLV would disagree about
// where the client's bytes begin.
ProxyParse read_tlvs(std::string_view header, size_t pos, ProxyParse parse) {
  const size_t end = header.size();
  bool seen_alpn = false, seen_authority = false, seen_crc = false;
  while (pos < end) {
    if (end - pos < 3) return failure(pos, "TLV header overruns the address block");
    const uint8_t type = byte_at(header, pos);
    const size_t length = u16_at(header, pos + 1);
    if (length > end - pos - 3) {
      return failure(pos + 1, "TLV of " + std::to_string(length) + " bytes overruns the block");
    }
    const size_t value_pos = pos + 3;
    const std::string_view value = header.substr(value_pos, length);
    // A second value of a TLV usher reads could be taken by another reader instead of the first.
    bool* seen = type == kTlvAlpn        ? &seen_alpn
                 : type == kTlvAuthority ? &seen_authority
                 : type == kTlvCrc32c    ? &seen_crc
                                         : nullptr;
    if (seen != nullptr && *seen) return failure(pos, "TLV " + hex_byte(type) + " repeated");
    if (seen != nullptr) *seen = true;
    if (type == kTlvAlpn) parse.header.alpn = value;
    if (type == kTlvAuthority) parse.header.authority = value;
    if (type == kTlvCrc32c) {
      if (length != 4) return failure(pos + 1, "CRC32c TLV not 4 bytes long");
      uint32_t crc = crc32c_update(~0u, header.substr(0, value_pos));
      crc = crc32c_update(crc, std::string_view("\0\0\0\0", 4));
      crc = ~crc32c_update(crc, header.substr(value_pos + 4));
      const uint32_t sent = static_cast<uint32_t>(u16_at(value, 0) << 16 | u16_at(value, 2));
      if (crc != sent) return failure(value_pos, "CRC32c does not match the header");
    }
    pos = value_pos + length;
  }
  return parse;
}

ProxyParse parse_v2(std::string_view bytes) {
  const size_t signature_seen = std::min(bytes.size(), kV2SignatureLength);
  for (size_t i = 0; i < signature_seen; ++i) {
    if (bytes[i] != kV2Signature[i]) return failure(i, "not the v2 signature");
  }
  if (bytes.size() <= 12) return {};
  const uint8_t version_command = byte_at(bytes, 12);
  if (version_command >> 4 != 2) {
    return failure(12, "version " + std::to_string(version_command >> 4) + ", not 2");
  }
  const uint8_t command = version_command & 0xF;
  if (command != kCommandLocal && command != kCommandProxy) {
    return failure(12, "command " + std::to_string(command) + " is neither LOCAL nor PROXY");
  }
  if (bytes.size() <= 13) return {};
  const V2Family* family = find_family(byte_at(bytes, 13));
  if (family == nullptr) {
    return failure(
        13, "address family and protocol " + hex_byte(byte_at(bytes, 13)) + " are not defined");
  }
  if (bytes.size() <= 14) return {};
  // The length's high byte alone can already exceed the bound.
  const size_t length = bytes.size() == 15 ? size_t{byte_at(bytes, 14)} << 8 : u16_at(bytes, 14);
  if (length > kProxyV2MaxBlock) {
    return failure(14,
                   "block length over the limit of " + std::to_string(kProxyV2MaxBlock) + " bytes");
  }
  if (bytes.size() == 15) return {};
  if (length < family->address_length) {
    return failure(14, "block of " + std::to_string(length) + " bytes is shorter than its " +
                           std::to_string(family->address_length) + "-byte addresses");
  }
  if (bytes.size() < kV2FixedLength + length) return {};

  ProxyParse parse;
  parse.status = ProxyStatus::kDone;
  ProxyHeader& h = parse.header;
  h.version = 2;
  h.transport = family->transport;
  h.length = kV2FixedLength + length;
  const char* block = bytes.data() + kV2FixedLength;
  h.local = command == kCommandLocal || family->family == AF_UNSPEC || family->family == AF_UNIX;
  if (!h.local && family->family == AF_INET) {
    h.source = v4_address(block, block + 8);
    h.destination = v4_address(block + 4, block + 10);
  } else if (!h.local) {
    h.source = v6_address(block, block + 32);
    h.destination = v6_address(block + 16, block + 34);
  }
  // TLVs follow the addresses whatever the command: a LOCAL header may carry a CRC32c too.
  return read_tlvs(bytes.substr(0, h.length), kV2FixedLength + family->address_length,
                   std::move(parse));
}

ProxyParse parse_v1(std::string_view bytes) {
  const std::string_view line = bytes.substr(0, kProxyV1MaxLength);
  V1Line parsed = parse_v1_line(line);
  if (parsed.status == ProxyStatus::kError) return failure(parsed.offset, parsed.why);
  if (parsed.status == ProxyStatus::kNeedMore) {
    if (line.size() < kProxyV1MaxLength) return {};
    return failure(kProxyV1MaxLength - 1,
                   "no CRLF within " + std::to_string(kProxyV1MaxLength) + " bytes");
  }
  ProxyParse parse;
  parse.status = ProxyStatus::kDone;
  parse.header.version = 1;
  parse.header.local = !parsed.source.has_value();
  parse.header.source = parsed.source;
  parse.header.destination = parsed.destination;
  parse.header.length = parsed.offset;
  return parse;
}

// Appends the address and port in network order, an IPv4 one mapped into IPv6 when `as_v6`.
void append_address(std::string& out, const Address& a, bool as_v6) {
  const sockaddr* sa = a.sockaddr_ptr();
  if (a.family() == AF_INET6) {
    out.append(reinterpret_cast<const char*>(&reinterpret_cast<const sockaddr_in6*>(sa)->sin6_addr),
               16);
    return;
  }
  if (as_v6) out.append("\0\0\0\0\0\0\0\0\0\0\xff\xff", 12);
  out.append(reinterpret_cast<const char*>(&reinterpret_cast<const sockaddr_in*>(sa)->sin_addr), 4);
}

void append_port(std::string& out, const Address& a) {
  const uint16_t port = a.port();
  out.push_back(static_cast<char>(port >> 8));
  out.push_back(static_cast<char>(port & 0xFF));
}

void append_tlv(std::string& out, uint8_t type, std::string_view value) {
  if (value.empty() || value.size() > kMaxTlvValueWritten) return;
  out.push_back(static_cast<char>(type));
  out.push_back(0);
  out.push_back(static_cast<char>(value.size()));
  out.append(value);
}

bool is_ip(const Address& a) {
  return a.family() == AF_INET || a.family() == AF_INET6;
}

}  // namespace

ProxyParse parse_proxy_header(std::string_view bytes, ProxyVersions accept) {
  if (bytes.empty()) return {};
  const bool v1 = bytes[0] == 'P', v2 = bytes[0] == kV2Signature[0];
  if (v1 && accept.v1) return parse_v1(bytes);
  if (v2 && accept.v2) return parse_v2(bytes);
  if (v1 || v2)
    return failure(0, v1 ? "v1 header, not accepted here" : "v2 header, not accepted here");
  return failure(0, "neither a v1 nor a v2 header");
}

std::string proxy_v1(const Address& source, const Address& destination) {
  const int family = source.family();
  if (!is_ip(source) || family != destination.family()) return "PROXY UNKNOWN\r\n";
  char ip[INET6_ADDRSTRLEN];
  std::string out = family == AF_INET ? "PROXY TCP4 " : "PROXY TCP6 ";
  out.append(ip, format_ip(source.sockaddr_ptr(), ip, sizeof ip));
  out.push_back(' ');
  out.append(ip, format_ip(destination.sockaddr_ptr(), ip, sizeof ip));
  out += ' ' + std::to_string(source.port()) + ' ' + std::to_string(destination.port()) + "\r\n";
  return out;
}

std::string proxy_v2(const Address& source, const Address& destination, Transport transport,
                     std::string_view alpn, std::string_view authority) {
  std::string out(kV2Signature, kV2SignatureLength);
  out.push_back(static_cast<char>(0x20 | kCommandProxy));
  const uint8_t protocol = transport == Transport::kStream ? 0x1 : 0x2;
  if (!is_ip(source) || !is_ip(destination)) {
    // Still PROXY, as the spec asks for families it cannot carry: the backend uses the
    // connection's own addresses, and the TLVs still count.
    out.push_back(0x00);
    out.append(2, '\0');
  } else {
    // Mixed families are written both as IPv6, an IPv4 one mapped: the backend still learns the
    // client's address, which LOCAL would hide behind the proxy's.
    const bool v6 = source.family() == AF_INET6 || destination.family() == AF_INET6;
    out.push_back(static_cast<char>((v6 ? 0x20 : 0x10) | protocol));
    out.append(2, '\0');
    append_address(out, source, v6);
    append_address(out, destination, v6);
    append_port(out, source);
    append_port(out, destination);
  }
  append_tlv(out, kTlvAlpn, alpn);
  append_tlv(out, kTlvAuthority, authority);
  const size_t block = out.size() - kV2FixedLength;
  out[14] = static_cast<char>(block >> 8);
  out[15] = static_cast<char>(block & 0xFF);
  return out;
}

}  // namespace usher::l4
