#include "codec/l4/proxy_protocol.h"

#include <gtest/gtest.h>

#include <string>

namespace usher::l4 {
namespace {

Address addr(const char* text) {
  auto a = Address::parse(text);
  EXPECT_TRUE(a.ok()) << text;
  return *a;
}

ProxyParse parse(const std::string& bytes, ProxyVersions accept = {}) {
  return parse_proxy_header(bytes, accept);
}

// The spec's CRC32c, bit by bit: an oracle independent of the codec's table.
uint32_t crc32c(const std::string& bytes) {
  uint32_t crc = ~0u;
  for (unsigned char b : bytes) {
    crc ^= b;
    for (int k = 0; k < 8; ++k) crc = (crc & 1) ? (crc >> 1) ^ 0x82F63B78u : crc >> 1;
  }
  return ~crc;
}

const std::string kSignature("\r\n\r\n\0\r\nQUIT\n", 12);

// A v2 header from its version-and-command byte, family byte and block.
std::string v2(uint8_t version_command, uint8_t family, const std::string& block) {
  std::string out = kSignature;
  out.push_back(static_cast<char>(version_command));
  out.push_back(static_cast<char>(family));
  out.push_back(static_cast<char>(block.size() >> 8));
  out.push_back(static_cast<char>(block.size() & 0xFF));
  return out + block;
}

// 192.0.2.1:56324 -> 198.51.100.2:443, as the v2 block of TCP over IPv4 lays it out.
const std::string kV4Block("\xc0\x00\x02\x01\xc6\x33\x64\x02\xdc\x04\x01\xbb", 12);

std::string tlv(uint8_t type, const std::string& value) {
  return std::string{static_cast<char>(type), static_cast<char>(value.size() >> 8),
                     static_cast<char>(value.size() & 0xFF)} +
         value;
}

// The offset named by an error ("PROXY header: byte N: ..."), or -1.
long error_offset(const ProxyParse& p) {
  if (p.status != ProxyStatus::kError) return -1;
  const std::string prefix = "PROXY header: byte ";
  if (p.error.rfind(prefix, 0) != 0) return -1;
  return std::stol(p.error.substr(prefix.size()));
}

void expect_prefixes_need_more(const std::string& header, ProxyVersions accept = {}) {
  for (size_t n = 0; n < header.size(); ++n) {
    const ProxyParse p = parse(header.substr(0, n), accept);
    EXPECT_EQ(p.status, ProxyStatus::kNeedMore) << n << " bytes: " << p.error;
  }
  EXPECT_EQ(parse(header, accept).status, ProxyStatus::kDone);
}

TEST(ProxyProtocol, CrcOracleMatchesTheCheckValue) {
  EXPECT_EQ(crc32c("123456789"), 0xE3069283u);
}

TEST(ProxyProtocol, WritesKnownV1Lines) {
  EXPECT_EQ(proxy_v1(addr("192.0.2.1:56324"), addr("198.51.100.2:443")),
            "PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n");
  EXPECT_EQ(proxy_v1(addr("[2001:db8::1]:0"), addr("[2001:db8::2]:65535")),
            "PROXY TCP6 2001:db8::1 2001:db8::2 0 65535\r\n");
  EXPECT_EQ(proxy_v1(addr("192.0.2.1:1"), addr("[2001:db8::2]:2")), "PROXY UNKNOWN\r\n");
}

TEST(ProxyProtocol, WritesKnownV2Headers) {
  EXPECT_EQ(proxy_v2(addr("192.0.2.1:56324"), addr("198.51.100.2:443"), Transport::kStream),
            v2(0x21, 0x11, kV4Block));
  EXPECT_EQ(proxy_v2(addr("192.0.2.1:56324"), addr("198.51.100.2:443"), Transport::kDatagram),
            v2(0x21, 0x12, kV4Block));
  const std::string v6_block = std::string("\x20\x01\x0d\xb8", 4) + std::string(11, '\0') + "\x01" +
                               std::string("\x20\x01\x0d\xb8", 4) + std::string(11, '\0') + "\x02" +
                               std::string("\x00\x50\x01\xbb", 4);
  EXPECT_EQ(proxy_v2(addr("[2001:db8::1]:80"), addr("[2001:db8::2]:443"), Transport::kStream, "h2",
                     "a.test"),
            v2(0x21, 0x21, v6_block + tlv(0x01, "h2") + tlv(0x02, "a.test")));
}

TEST(ProxyProtocol, ReadsKnownHeaders) {
  ProxyParse p = parse("PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\nGET /");
  ASSERT_EQ(p.status, ProxyStatus::kDone) << p.error;
  EXPECT_EQ(p.header.version, 1);
  EXPECT_FALSE(p.header.local);
  EXPECT_EQ(p.header.source, addr("192.0.2.1:56324"));
  EXPECT_EQ(p.header.destination, addr("198.51.100.2:443"));
  EXPECT_EQ(p.header.length, 45u);

  p = parse(v2(0x21, 0x12, kV4Block + tlv(0x01, "h2") + tlv(0xEE, "skipped")) + "payload");
  ASSERT_EQ(p.status, ProxyStatus::kDone) << p.error;
  EXPECT_EQ(p.header.version, 2);
  EXPECT_EQ(p.header.transport, Transport::kDatagram);
  EXPECT_EQ(p.header.source, addr("192.0.2.1:56324"));
  EXPECT_EQ(p.header.destination, addr("198.51.100.2:443"));
  EXPECT_EQ(p.header.alpn, "h2");
  EXPECT_EQ(p.header.authority, "");
  EXPECT_EQ(p.header.length, 16u + 12 + 5 + 10);
}

TEST(ProxyProtocol, RoundTrips) {
  const char* pairs[][2] = {{"192.0.2.1:56324", "198.51.100.2:443"},
                            {"0.0.0.0:0", "255.255.255.255:65535"},
                            {"[2001:db8::1]:80", "[::1]:8443"},
                            {"[::ffff:192.0.2.1]:1", "[fe80::1:2:3:4]:2"}};
  for (const auto& [s, d] : pairs) {
    const Address source = addr(s), destination = addr(d);
    for (const std::string& header :
         {proxy_v1(source, destination), proxy_v2(source, destination, Transport::kStream),
          proxy_v2(source, destination, Transport::kDatagram, "http/1.1", "www.a.test")}) {
      const ProxyParse p = parse(header + "rest");
      ASSERT_EQ(p.status, ProxyStatus::kDone) << s << " " << p.error;
      EXPECT_FALSE(p.header.local);
      EXPECT_EQ(p.header.source, source) << s;
      EXPECT_EQ(p.header.destination, destination) << d;
      EXPECT_EQ(p.header.length, header.size());
      expect_prefixes_need_more(header);
    }
  }
  const ProxyParse p = parse(
      proxy_v2(addr("1.2.3.4:5"), addr("[::1]:6"), Transport::kDatagram, "http/1.1", "www.a.test"));
  ASSERT_EQ(p.status, ProxyStatus::kDone) << p.error;
  EXPECT_EQ(p.header.transport, Transport::kDatagram);
  EXPECT_EQ(p.header.alpn, "http/1.1");
  EXPECT_EQ(p.header.authority, "www.a.test");
}

// An IPv4 source beside an IPv6 destination goes out IPv4-mapped, keeping the client's address.
TEST(ProxyProtocol, MixedFamiliesGoOutMappedInV2) {
  const ProxyParse p =
      parse(proxy_v2(addr("192.0.2.1:7"), addr("[2001:db8::2]:8"), Transport::kStream));
  ASSERT_EQ(p.status, ProxyStatus::kDone) << p.error;
  EXPECT_EQ(p.header.source, addr("[::ffff:192.0.2.1]:7"));
  EXPECT_EQ(p.header.destination, addr("[2001:db8::2]:8"));
}

TEST(ProxyProtocol, LocalUnknownAndUnixCarryNoAddresses) {
  const std::string unix_block(216, '/');
  const std::string headers[] = {
      "PROXY UNKNOWN\r\n",
      "PROXY UNKNOWN ffff:f::1 ffff:f::2 65535 65535\r\n",
      v2(0x20, 0x00, ""),
      v2(0x20, 0x11, kV4Block),  // LOCAL: the addresses are not to be used
      v2(0x21, 0x00, tlv(0x02, "a.test")),
      v2(0x21, 0x31, unix_block),
      v2(0x21, 0x32, unix_block + tlv(0x01, "h2")),
  };
  for (const std::string& header : headers) {
    const ProxyParse p = parse(header + "x");
    ASSERT_EQ(p.status, ProxyStatus::kDone) << p.error;
    EXPECT_TRUE(p.header.local);
    EXPECT_FALSE(p.header.source.has_value());
    EXPECT_FALSE(p.header.destination.has_value());
    EXPECT_EQ(p.header.length, header.size());
    expect_prefixes_need_more(header);
  }
  EXPECT_EQ(parse(v2(0x21, 0x00, tlv(0x02, "a.test"))).header.authority, "a.test");
  Address none;
  EXPECT_EQ(proxy_v2(none, none, Transport::kStream), v2(0x21, 0x00, ""));
}

TEST(ProxyProtocol, AcceptsOnlyTheVersionsAsked) {
  const std::string one = proxy_v1(addr("1.2.3.4:5"), addr("5.6.7.8:9"));
  const std::string two = proxy_v2(addr("1.2.3.4:5"), addr("5.6.7.8:9"), Transport::kStream);
  EXPECT_EQ(error_offset(parse(one, {.v1 = false, .v2 = true})), 0);
  EXPECT_EQ(error_offset(parse(two, {.v1 = true, .v2 = false})), 0);
  EXPECT_EQ(parse(one, {.v1 = true, .v2 = false}).status, ProxyStatus::kDone);
  EXPECT_EQ(parse(two, {.v1 = false, .v2 = true}).status, ProxyStatus::kDone);
  EXPECT_EQ(error_offset(parse("P", {.v1 = false, .v2 = false})), 0);
}

// Each bad input fails at the named byte, and already once `decided` bytes have come (the byte
// itself, but the end of the token for an IPv6 address, which is checked whole).
TEST(ProxyProtocol, RefusesBadV1LinesAtTheirFirstBadByte) {
  struct Case {
    std::string text;
    long offset;
    size_t decided;
  };
  const Case cases[] = {
      {"GET / HTTP/1.1\r\n", 0, 1},
      {"POST / HTTP/1.1\r\n", 1, 2},
      {"PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n", 6, 7},
      {"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n", 9, 10},
      {"PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n", 6, 7},
      {"PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n", 19, 20},
      {"PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n", 12, 13},
      {"PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n", 19, 20},
      {"PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n", 16, 17},
      {"PROXY TCP4 1.2.3.4.5 5.6.7.8 1 2\r\n", 18, 19},
      {"PROXY TCP4 1..3.4 5.6.7.8 1 2\r\n", 13, 14},
      {"PROXY TCP4 ::1 5.6.7.8 1 2\r\n", 11, 12},
      {"PROXY TCP6 1.2.3.4 ::1 1 2\r\n", 11, 19},
      {"PROXY TCP6 ::g ::1 1 2\r\n", 13, 14},
      {"PROXY TCP6 1::2::3 ::1 1 2\r\n", 11, 19},
      {"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n", 31, 32},
      {"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n", 28, 29},
      {"PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n", 27, 28},
      {"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n", 30, 31},
      {"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", 30, 31},
      {"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX", 31, 32},
      {"PROXY UNKNOWNX\r\n", 13, 14},
      {"PROXY UNKNOWN a\nb\r\n", 15, 16},
      {"PROXY UNKNOWN " + std::string(200, 'x') + "\r\n", 106, 107},
  };
  for (const Case& c : cases) {
    const ProxyParse whole = parse(c.text);
    EXPECT_EQ(error_offset(whole), c.offset) << c.text << " -> " << whole.error;
    EXPECT_EQ(error_offset(parse(c.text.substr(0, c.decided))), c.offset) << c.text;
    EXPECT_EQ(parse(c.text.substr(0, c.decided - 1)).status, ProxyStatus::kNeedMore) << c.text;
  }
  // An IPv6 address is only checked whole; the longest possible one still fits.
  EXPECT_EQ(parse("PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255 ::1 1 2\r\n").status,
            ProxyStatus::kDone);
}

TEST(ProxyProtocol, RefusesBadV2HeadersAsSoonAsTheyCome) {
  const std::string good = v2(0x21, 0x11, kV4Block);
  struct Case {
    std::string bytes;
    long offset;
  };
  std::string wrong_signature = good;
  wrong_signature[5] = 'x';
  const Case cases[] = {
      {wrong_signature, 5},
      {v2(0x11, 0x11, kV4Block), 12},  // version 1
      {v2(0x22, 0x11, kV4Block), 12},  // command 2
      {v2(0x21, 0x13, kV4Block), 13},  // TCP4 with protocol 3
      {v2(0x21, 0x41, kV4Block), 13},  // family 4
      {v2(0x21, 0x11, kV4Block.substr(0, 11)), 14},
      {v2(0x21, 0x21, kV4Block), 14},  // 12 bytes cannot hold IPv6 addresses
      {v2(0x21, 0x11, kV4Block + std::string(2037, 'x')), 14},  // 2049 bytes
      {v2(0x21, 0x11, kV4Block + "\x01\x00"), 28},              // a TLV header cut short
      {v2(0x21, 0x11, kV4Block + tlv(0x01, "h2").substr(0, 4)), 29},
      {v2(0x21, 0x11, kV4Block + tlv(0x01, "h2") + tlv(0x01, "h2")), 33},
      {v2(0x21, 0x11, kV4Block + tlv(0x03, "abc")), 29},
      {v2(0x21, 0x11, kV4Block + tlv(0x03, "abcd")), 31},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(error_offset(parse(c.bytes)), c.offset) << parse(c.bytes).error;
  }
  // The length is refused on arrival: its first byte alone can be over the bound.
  std::string high = v2(0x21, 0x11, "").substr(0, 15);
  high[14] = 0x09;
  EXPECT_EQ(error_offset(parse(high)), 14);
  high[14] = 0x08;
  EXPECT_EQ(parse(high).status, ProxyStatus::kNeedMore);
  EXPECT_EQ(parse(v2(0x21, 0x11, kV4Block + tlv(0xEE, std::string(2033, 'x')))).status,
            ProxyStatus::kDone);  // 2048 bytes: addresses and one TLV
}

TEST(ProxyProtocol, VerifiesACrc32c) {
  // The CRC covers the whole header with its own value zeroed.
  const std::string zeroed = v2(0x21, 0x11, kV4Block + tlv(0x03, std::string(4, '\0')));
  const uint32_t crc = crc32c(zeroed);
  std::string good = zeroed;
  for (int i = 0; i < 4; ++i) good[good.size() - 4 + i] = static_cast<char>(crc >> (24 - 8 * i));
  const ProxyParse p = parse(good);
  EXPECT_EQ(p.status, ProxyStatus::kDone) << p.error;
  expect_prefixes_need_more(good);

  std::string bad_address = good;
  bad_address[16] ^= 1;
  EXPECT_EQ(error_offset(parse(bad_address)), 31);
  std::string bad_crc = good;
  bad_crc.back() ^= 1;
  EXPECT_EQ(error_offset(parse(bad_crc)), 31);
  std::string twice =
      v2(0x21, 0x11, kV4Block + tlv(0x03, std::string(4, '\0')) + tlv(0x03, std::string(4, '\0')));
  EXPECT_EQ(parse(twice).status, ProxyStatus::kError);
}

}  // namespace
}  // namespace usher::l4
