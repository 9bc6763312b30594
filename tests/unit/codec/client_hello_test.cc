#include "codec/l4/client_hello.h"

#include <gtest/gtest.h>
#include <openssl/ssl.h>

#include <string>
#include <vector>

namespace usher::l4 {
namespace {

struct HelloSpec {
  std::string server_name;        // none when empty
  std::vector<std::string> alpn;  // none when empty
  int max_version = 0;            // e.g. TLS1_2_VERSION
};

// The first flight of a real OpenSSL client: its ClientHello, one record.
std::string openssl_hello(const HelloSpec& spec) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  SSL* ssl = SSL_new(ctx);
  BIO* out = BIO_new(BIO_s_mem());
  SSL_set_bio(ssl, BIO_new(BIO_s_mem()), out);
  SSL_set_connect_state(ssl);
  if (!spec.server_name.empty()) SSL_set_tlsext_host_name(ssl, spec.server_name.c_str());
  if (spec.max_version != 0) SSL_set_max_proto_version(ssl, spec.max_version);
  if (!spec.alpn.empty()) {
    std::string wire;
    for (const std::string& p : spec.alpn) wire += static_cast<char>(p.size()) + p;
    SSL_set_alpn_protos(ssl, reinterpret_cast<const unsigned char*>(wire.data()),
                        static_cast<unsigned>(wire.size()));
  }
  EXPECT_EQ(SSL_do_handshake(ssl), -1);  // waits for the server's answer
  char* data = nullptr;
  const long length = BIO_get_mem_data(out, &data);
  std::string bytes(data, static_cast<size_t>(length));
  SSL_free(ssl);
  SSL_CTX_free(ctx);
  return bytes;
}

std::string u16(size_t n) {
  return {static_cast<char>(n >> 8), static_cast<char>(n & 0xFF)};
}

std::string record(const std::string& payload) {
  return "\x16\x03\x01" + u16(payload.size()) + payload;
}

// A record holding a hand-made ClientHello with `extensions` (the block's contents).
std::string hand_hello(const std::string& extensions, bool with_extensions = true) {
  std::string body = "\x03\x03" + std::string(32, 'r') + std::string(1, '\0') + u16(2) +
                     "\x13\x01" + std::string("\x01\x00", 2);
  if (with_extensions) body += u16(extensions.size()) + extensions;
  const std::string message = "\x01" + std::string(1, '\0') + u16(body.size()) + body;
  return record(message);
}

std::string extension(uint16_t type, const std::string& data) {
  return u16(type) + u16(data.size()) + data;
}

std::string sni(const std::vector<std::pair<uint8_t, std::string>>& names) {
  std::string list;
  for (const auto& [type, name] : names) list += static_cast<char>(type) + u16(name.size()) + name;
  return extension(0, u16(list.size()) + list);
}

// The same bytes in records cut where `cuts` say (offsets into the first record's payload).
std::string reframe(const std::string& one_record, const std::vector<size_t>& cuts) {
  const std::string payload = one_record.substr(5);
  std::string out;
  size_t from = 0;
  for (size_t cut : cuts) {
    out += record(payload.substr(from, cut - from));
    from = cut;
  }
  return out + record(payload.substr(from));
}

long error_offset(const HelloPeek& p) {
  if (p.status != HelloStatus::kError) return -1;
  const std::string prefix = "ClientHello: byte ";
  if (p.error.rfind(prefix, 0) != 0) return -1;
  return std::stol(p.error.substr(prefix.size()));
}

void expect_prefixes_need_more(const std::string& bytes) {
  for (size_t n = 0; n < bytes.size(); ++n) {
    const HelloPeek p = peek_client_hello(std::string_view(bytes).substr(0, n));
    ASSERT_EQ(p.status, HelloStatus::kNeedMore) << n << " bytes: " << p.error;
  }
}

TEST(ClientHello, ReadsNameAndAlpnFromOpenSsl) {
  const std::string hello = openssl_hello({"WWW.Example.test", {"h2", "http/1.1"}});
  const HelloPeek p = peek_client_hello(hello);
  ASSERT_EQ(p.status, HelloStatus::kDone) << p.error;
  EXPECT_EQ(p.server_name, "www.example.test");
  EXPECT_EQ(p.alpn, (std::vector<std::string>{"h2", "http/1.1"}));
  expect_prefixes_need_more(hello);

  const HelloPeek tls12 = peek_client_hello(openssl_hello({"a.test", {}, TLS1_2_VERSION}));
  ASSERT_EQ(tls12.status, HelloStatus::kDone) << tls12.error;
  EXPECT_EQ(tls12.server_name, "a.test");
  EXPECT_TRUE(tls12.alpn.empty());
}

TEST(ClientHello, NoServerNameIsAnEmptyName) {
  const HelloPeek p = peek_client_hello(openssl_hello({"", {"h2"}}));
  ASSERT_EQ(p.status, HelloStatus::kDone) << p.error;
  EXPECT_EQ(p.server_name, "");
  EXPECT_EQ(p.alpn, std::vector<std::string>{"h2"});

  const HelloPeek bare = peek_client_hello(hand_hello("", false));
  ASSERT_EQ(bare.status, HelloStatus::kDone) << bare.error;
  EXPECT_EQ(bare.server_name, "");
}

TEST(ClientHello, ReadsAHelloSpreadOverRecords) {
  const std::string hello = openssl_hello({"split.test", {"h2"}});
  const size_t payload = hello.size() - 5;
  const std::vector<std::vector<size_t>> cuts = {
      {1}, {2}, {3}, {4}, {payload / 2}, {payload - 1}, {1, 2, 3}, {10, 20, 30, 40, 50}};
  for (const auto& at : cuts) {
    const std::string split = reframe(hello, at);
    const HelloPeek p = peek_client_hello(split);
    ASSERT_EQ(p.status, HelloStatus::kDone) << at[0] << ": " << p.error;
    EXPECT_EQ(p.server_name, "split.test");
    EXPECT_EQ(p.alpn, std::vector<std::string>{"h2"});
    expect_prefixes_need_more(split);
  }
}

// An error in a later record names its byte in the input, not in the joined message.
TEST(ClientHello, NamesTheInputOffsetOfAnErrorInALaterRecord) {
  std::string hello = openssl_hello({"bad.test", {}});
  const size_t name = hello.find("bad.test");
  ASSERT_NE(name, std::string::npos);
  hello[name + 3] = '*';
  EXPECT_EQ(error_offset(peek_client_hello(hello)), static_cast<long>(name + 3));
  const std::string split = reframe(hello, {name - 5});  // the name begins the second record
  EXPECT_EQ(error_offset(peek_client_hello(split)), static_cast<long>(name + 5 + 3));
}

TEST(ClientHello, OtherBytesAreNotTls) {
  EXPECT_EQ(peek_client_hello("GET / HTTP/1.1\r\nHost: a\r\n\r\n").status, HelloStatus::kNotTls);
  EXPECT_EQ(peek_client_hello("G").status, HelloStatus::kNotTls);
  EXPECT_EQ(peek_client_hello(std::string("\x80\x2e\x01\x03\x01", 5)).status,
            HelloStatus::kNotTls);  // an SSL 2.0-style hello
  EXPECT_EQ(peek_client_hello(std::string("\x16\x47", 2)).status, HelloStatus::kNotTls);
  EXPECT_EQ(peek_client_hello("").status, HelloStatus::kNeedMore);
}

TEST(ClientHello, RefusesBadFramingAsSoonAsItComes) {
  const std::string hello = openssl_hello({"a.test", {}});
  EXPECT_EQ(error_offset(peek_client_hello(std::string("\x16\x03\x01\x41", 4))), 3);
  EXPECT_EQ(error_offset(peek_client_hello(std::string("\x16\x03\x01\x00\x00", 5))), 3);
  EXPECT_EQ(error_offset(peek_client_hello(std::string("\x16\x03\x01\x00\x04\x02", 6))), 5);
  // Over 16 KiB: known from the length's first byte.
  EXPECT_EQ(error_offset(peek_client_hello(std::string("\x16\x03\x01\x00\x04\x01\x01", 7))), 6);
  EXPECT_EQ(error_offset(peek_client_hello(std::string("\x16\x03\x01\x00\x04\x01\x00\x40\x01", 9))),
            6);
  // A later record of another type or version.
  std::string split = reframe(hello, {10});
  const size_t second = 5 + 10;
  split[second] = 0x17;
  EXPECT_EQ(error_offset(peek_client_hello(split)), static_cast<long>(second));
  split[second] = 0x16;
  split[second + 1] = 0x02;
  EXPECT_EQ(error_offset(peek_client_hello(split)), static_cast<long>(second + 1));
  // Too many records.
  std::vector<size_t> cuts;
  for (size_t i = 1; i < kMaxClientHelloRecords; ++i) cuts.push_back(i);
  EXPECT_EQ(peek_client_hello(reframe(hello, cuts)).status, HelloStatus::kDone);
  cuts.push_back(kMaxClientHelloRecords);
  const std::string many = reframe(hello, cuts);
  EXPECT_EQ(error_offset(peek_client_hello(many)), static_cast<long>(kMaxClientHelloRecords * 6));
}

TEST(ClientHello, RefusesCorruptedLengths) {
  const std::string hello = openssl_hello({"a.test", {"h2"}});
  // The offsets of OpenSSL's ClientHello: record 5, handshake header 4, version 2, random 32.
  const size_t session_id = 5 + 4 + 2 + 32;
  std::string bad = hello;
  bad[session_id] = 33;
  EXPECT_EQ(error_offset(peek_client_hello(bad)), static_cast<long>(session_id));
  const size_t suites = session_id + 1 + static_cast<uint8_t>(hello[session_id]);
  bad = hello;
  bad[suites + 1] = static_cast<char>(bad[suites + 1] | 1);
  EXPECT_EQ(error_offset(peek_client_hello(bad)), static_cast<long>(suites));
  bad = hello;
  bad[suites] = static_cast<char>(0xFF);
  EXPECT_EQ(error_offset(peek_client_hello(bad)), static_cast<long>(suites));
  // The extensions' length one more and one less than what is there.
  const size_t suites_length =
      (static_cast<uint8_t>(hello[suites]) << 8) | static_cast<uint8_t>(hello[suites + 1]);
  const size_t compression = suites + 2 + suites_length;
  const size_t extensions = compression + 1 + static_cast<uint8_t>(hello[compression]);
  const size_t extensions_length =
      (static_cast<uint8_t>(hello[extensions]) << 8) | static_cast<uint8_t>(hello[extensions + 1]);
  bad = hello;
  bad.replace(extensions, 2, u16(extensions_length + 1));
  EXPECT_EQ(error_offset(peek_client_hello(bad)), static_cast<long>(extensions));
  bad = hello;
  bad.replace(extensions, 2, u16(extensions_length - 1));
  EXPECT_EQ(peek_client_hello(bad).status, HelloStatus::kError);
}

TEST(ClientHello, RefusesMalformedNamesAndProtocols) {
  const std::string cases[] = {
      sni({{0, ""}}),                       // an empty name
      sni({{0, "a.test"}, {0, "b.test"}}),  // two host names
      sni({{0, "a test"}}),                 // a byte outside [A-Za-z0-9._-]
      sni({{0, std::string("a\0b", 3)}}),
      sni({{0, std::string(256, 'a')}}),
      sni({{0, "a.test"}}) + sni({{0, "a.test"}}),  // the extension twice
      extension(0, ""),                             // no list
      extension(0, u16(9) +
                       std::string("\x00\x00\x06"
                                   "a.test",
                                   9) +
                       "x"),  // after the list
      extension(0, u16(10) + std::string("\x00\x00\x06"
                                         "a.test",
                                         9)),  // list overruns
      extension(16, u16(0)),                   // no protocols
      extension(16, u16(3) + std::string("\x02h2", 3) + extension(16, u16(1) + "\x00")),
      extension(16, u16(4) + std::string("\x02h2\x00", 4)),  // an empty protocol
      extension(16, u16(4) + std::string("\x03h2", 3)),      // a name overrunning its list
      extension(1, "abc").substr(0, 6),                      // an extension overrunning
  };
  for (const std::string& extensions : cases) {
    const HelloPeek p = peek_client_hello(hand_hello(extensions));
    EXPECT_EQ(p.status, HelloStatus::kError) << testing::PrintToString(extensions);
  }
  const HelloPeek other_type = peek_client_hello(hand_hello(sni({{7, "x"}, {0, "Ok_1.test"}})));
  ASSERT_EQ(other_type.status, HelloStatus::kDone) << other_type.error;
  EXPECT_EQ(other_type.server_name, "ok_1.test");
}

}  // namespace
}  // namespace usher::l4
