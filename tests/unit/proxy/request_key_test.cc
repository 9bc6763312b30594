#include "proxy/l7/request_key.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "balance/picker.h"
#include "codec/http1/head_parser.h"

namespace usher::proxy::l7 {
namespace {

using Kind = config::HashKey::Kind;

constexpr std::string_view kClient = "192.0.2.7";

// The key hash of a request given as text, for a hash_key of `kind` and `name`.
uint64_t key_of(const std::string& text, Kind kind, std::string name = {}) {
  std::vector<http1::Header> scratch(100);
  http1::RequestHead head;
  http1::ParseError error;
  size_t scanned = 0;
  EXPECT_EQ(http1::parse_request(text, {}, scratch, scanned, head, error),
            http1::ParseStatus::kComplete)
      << text;
  return request_key_hash(head, config::HashKey{kind, std::move(name)}, kClient);
}

uint64_t hash(std::string_view value) {
  return balance::hash_key(value);
}

TEST(RequestKey, ClientIpIsTheClientAddressWhateverTheRequest) {
  EXPECT_EQ(key_of("GET /a?u=1 HTTP/1.1\r\nHost: h\r\nX-User: x\r\n\r\n", Kind::kClientIp),
            hash(kClient));
  EXPECT_EQ(key_of("POST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n", Kind::kClientIp),
            hash(kClient));
}

TEST(RequestKey, UriIsTheWholeTargetQueryIncluded) {
  EXPECT_EQ(key_of("GET /item/7?x=1 HTTP/1.1\r\nHost: h\r\n\r\n", Kind::kUri), hash("/item/7?x=1"));
  EXPECT_NE(key_of("GET /item/7?x=1 HTTP/1.1\r\nHost: h\r\n\r\n", Kind::kUri),
            key_of("GET /item/7?x=2 HTTP/1.1\r\nHost: h\r\n\r\n", Kind::kUri));
  // The rest of the head does not matter.
  EXPECT_EQ(key_of("GET /item/7 HTTP/1.1\r\nHost: one\r\nX-A: 1\r\n\r\n", Kind::kUri),
            key_of("HEAD /item/7 HTTP/1.1\r\nHost: two\r\n\r\n", Kind::kUri));
}

TEST(RequestKey, HeaderIsMatchedWithoutCaseAndTheFirstFieldWins) {
  const std::string text = "GET / HTTP/1.1\r\nHost: h\r\nx-user: alice\r\nX-User: bob\r\n\r\n";
  EXPECT_EQ(key_of(text, Kind::kHeader, "X-User"), hash("alice"));
  EXPECT_EQ(key_of(text, Kind::kHeader, "X-USER"), hash("alice"));
  // Only that field: another one with a similar name is not it.
  EXPECT_EQ(
      key_of("GET / HTTP/1.1\r\nHost: h\r\nX-User-Id: carol\r\n\r\n", Kind::kHeader, "X-User"),
      hash(kClient));
}

TEST(RequestKey, CookieIsFoundAmongOthersAndInAnyCookieField) {
  EXPECT_EQ(key_of("GET / HTTP/1.1\r\nHost: h\r\nCookie: a=1; session=s42; z=9\r\n\r\n",
                   Kind::kCookie, "session"),
            hash("s42"));
  EXPECT_EQ(key_of("GET / HTTP/1.1\r\nHost: h\r\nCookie: a=1\r\nCookie: session=s43\r\n\r\n",
                   Kind::kCookie, "session"),
            hash("s43"));
  // A cookie whose name only starts with the key's name is another cookie.
  EXPECT_EQ(
      key_of("GET / HTTP/1.1\r\nHost: h\r\nCookie: sessionid=x\r\n\r\n", Kind::kCookie, "session"),
      hash(kClient));
}

TEST(RequestKey, QueryParameterIsTakenRawFromTheQueryOnly) {
  EXPECT_EQ(key_of("GET /p?a=1&user=u%207&z=2 HTTP/1.1\r\nHost: h\r\n\r\n", Kind::kQuery, "user"),
            hash("u%207"));
  EXPECT_EQ(key_of("GET /p?user=u1 HTTP/1.1\r\nHost: h\r\n\r\n", Kind::kQuery, "user"),
            key_of("GET /other?x=5&user=u1 HTTP/1.1\r\nHost: h\r\n\r\n", Kind::kQuery, "user"));
  // Absolute form: the query of the target, not of anything before the path.
  EXPECT_EQ(key_of("GET http://h/p?user=u2 HTTP/1.1\r\nHost: h\r\n\r\n", Kind::kQuery, "user"),
            hash("u2"));
  // Another parameter ending in the name, or the name in the path, is not it.
  EXPECT_EQ(key_of("GET /user=u3?xuser=u4 HTTP/1.1\r\nHost: h\r\n\r\n", Kind::kQuery, "user"),
            hash(kClient));
}

TEST(RequestKey, AMissingOrEmptyKeyFallsBackToTheClientAddress) {
  const std::string bare = "GET / HTTP/1.1\r\nHost: h\r\n\r\n";
  EXPECT_EQ(key_of(bare, Kind::kHeader, "X-User"), hash(kClient));
  EXPECT_EQ(key_of(bare, Kind::kCookie, "session"), hash(kClient));
  EXPECT_EQ(key_of(bare, Kind::kQuery, "user"), hash(kClient));
  EXPECT_EQ(key_of("GET /?user= HTTP/1.1\r\nHost: h\r\n\r\n", Kind::kQuery, "user"), hash(kClient));
  EXPECT_EQ(
      key_of("GET / HTTP/1.1\r\nHost: h\r\nCookie: session=\r\n\r\n", Kind::kCookie, "session"),
      hash(kClient));
  EXPECT_EQ(key_of("GET / HTTP/1.1\r\nHost: h\r\nX-User:\r\n\r\n", Kind::kHeader, "X-User"),
            hash(kClient));
}

TEST(RequestKey, DifferentKeysGiveDifferentHashes) {
  std::vector<uint64_t> seen;
  for (int i = 0; i < 1000; ++i) {
    seen.push_back(
        key_of("GET / HTTP/1.1\r\nHost: h\r\nX-User: user-" + std::to_string(i) + "\r\n\r\n",
               Kind::kHeader, "X-User"));
  }
  std::sort(seen.begin(), seen.end());
  EXPECT_EQ(std::unique(seen.begin(), seen.end()), seen.end());
}

}  // namespace
}  // namespace usher::proxy::l7
