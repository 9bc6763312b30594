// The access log's two line formats, byte for byte: field order, escaping, numbers.
#include <gtest/gtest.h>

#include <chrono>
#include <string>

#include "log/access_log.h"

namespace usher::log {
namespace {

using Format = config::AccessLog::Format;

// 2026-11-23T21:42:13.045Z
const auto kNow = std::chrono::system_clock::time_point(std::chrono::milliseconds(1795470133045));

RequestRecord sample() {
  RequestRecord r;
  r.client = "203.0.113.7";
  r.method = "GET";
  r.host = "example.com";
  r.target = "/a\"b\\c?q=\x01\xe9";
  r.referer = "https://example.com/";
  r.user_agent = "curl/7.88.1";
  r.request_id = "4f0c";
  r.status = 200;
  r.bytes_sent = 1234567;
  r.bytes_received = 89;
  r.duration_seconds = 0.0123456;
  r.upstream_seconds = 0.0105;
  r.listener = "web";
  r.route = "api";
  r.pool = "app";
  r.backend = "127.0.0.1:9001";
  r.retries = 2;
  r.queue_ms = 7;
  return r;
}

TEST(AccessLogFormat, JsonLine) {
  std::string out;
  SecondText clock;
  format_line(Format::kJson, sample(), kNow, clock, out);
  EXPECT_EQ(
      out,
      R"({"time":"2026-11-23T21:42:13.045Z","client":"203.0.113.7","method":"GET",)"
      R"("host":"example.com","path":"/a\"b\\c?q=\u0001\u00e9","protocol":"HTTP/1.1","status":200,)"
      R"("bytes_sent":1234567,"bytes_received":89,"duration_ms":12.346,"upstream_ms":10.500,)"
      R"("listener":"web","route":"api","pool":"app","backend":"127.0.0.1:9001","retries":2,)"
      R"("queue_ms":7,"request_id":"4f0c","user_agent":"curl/7.88.1"})"
      "\n");
}

TEST(AccessLogFormat, JsonLineOverTlsEndsWithItsFields) {
  RequestRecord r = sample();
  r.tls_version = "TLSv1.3";
  r.tls_cipher = "TLS_AES_128_GCM_SHA256";
  r.sni = "example.com";
  std::string out;
  SecondText clock;
  format_line(Format::kJson, r, kNow, clock, out);
  EXPECT_NE(out.find(R"("user_agent":"curl/7.88.1","tls_version":"TLSv1.3",)"
                     R"("tls_cipher":"TLS_AES_128_GCM_SHA256","sni":"example.com"})"),
            std::string::npos)
      << out;
}

TEST(AccessLogFormat, JsonLineWithoutBackendAnswer) {
  RequestRecord r = sample();
  r.upstream_seconds = -1;
  r.duration_seconds = 2.5;
  r.backend = "";
  std::string out;
  SecondText clock;
  format_line(Format::kJson, r, kNow, clock, out);
  EXPECT_NE(out.find(R"("duration_ms":2500.000,"upstream_ms":null,)"), std::string::npos) << out;
  EXPECT_NE(out.find(R"("backend":"",)"), std::string::npos) << out;
}

TEST(AccessLogFormat, JsonLineSaysWhichGuardActed) {
  RequestRecord r = sample();
  r.guard = "rate_limit";
  std::string out;
  SecondText clock;
  format_line(Format::kJson, r, kNow, clock, out);
  EXPECT_NE(out.find(R"("queue_ms":7,"guard":"rate_limit","request_id":)"), std::string::npos)
      << out;
}

// With a geoip database the line carries the client's country, empty when the database does not
// place it; without one the key is left out.
TEST(AccessLogFormat, JsonLineCarriesGeoCountryWithADatabase) {
  RequestRecord r = sample();
  std::string out;
  SecondText clock;
  format_line(Format::kJson, r, kNow, clock, out);
  EXPECT_EQ(out.find("geo_country"), std::string::npos) << out;
  r.located = true;
  r.geo_country = "DE";
  out.clear();
  format_line(Format::kJson, r, kNow, clock, out);
  EXPECT_NE(out.find(R"("user_agent":"curl/7.88.1","geo_country":"DE"})"), std::string::npos)
      << out;
  r.geo_country = {};
  out.clear();
  format_line(Format::kJson, r, kNow, clock, out);
  EXPECT_NE(out.find(R"("geo_country":""})"), std::string::npos) << out;
}

TEST(AccessLogFormat, CombinedLine) {
  std::string out;
  SecondText clock;
  format_line(Format::kCombined, sample(), kNow, clock, out);
  EXPECT_EQ(out,
            "203.0.113.7 - - [23/Nov/2026:21:42:13 +0000] \"GET /a\\x22b\\x5Cc?q=\\x01\\xE9 "
            "HTTP/1.1\" 200 1234567 \"https://example.com/\" \"curl/7.88.1\"\n");
}

TEST(AccessLogFormat, LinesAppendAndTheSecondMoves) {
  std::string out;
  SecondText clock;
  format_line(Format::kCombined, sample(), kNow, clock, out);
  format_line(Format::kCombined, sample(), kNow + std::chrono::seconds(61), clock, out);
  EXPECT_NE(out.find("[23/Nov/2026:21:42:13 +0000]"), std::string::npos);
  EXPECT_NE(out.find("[23/Nov/2026:21:43:14 +0000]"), std::string::npos);
}

}  // namespace
}  // namespace usher::log
