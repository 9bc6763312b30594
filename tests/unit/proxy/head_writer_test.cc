#include "proxy/l7/head_writer.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "codec/http1/head_parser.h"

namespace usher::proxy::l7 {
namespace {

RequestRewrite peer(std::string_view ip, bool trusted = false) {
  RequestRewrite r;
  r.peer_ip = ip;
  r.trusted_peer = trusted;
  r.port = "8080";
  return r;
}

std::string rewrite_request(const std::string& text, const RequestRewrite& rewrite) {
  std::vector<http1::Header> scratch(100);
  http1::RequestHead head;
  http1::ParseError error;
  size_t scanned = 0;
  EXPECT_EQ(http1::parse_request(text, {}, scratch, scanned, head, error),
            http1::ParseStatus::kComplete);
  char out[4096];
  size_t n = write_request_head(head, rewrite, out, sizeof out);
  return std::string(out, n);
}

std::string rewrite_request(const std::string& text) {
  return rewrite_request(text, peer("10.0.0.7"));
}

TEST(RequestRewrite, RemovesHopByHopAndReplacesUntrustedForwardingFields) {
  std::string out = rewrite_request(
      "GET /p HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, X-Hop\r\nKeep-Alive: 5\r\n"
      "X-Hop: secret\r\nTE: trailers\r\nProxy-Connection: x\r\nX-Forwarded-Proto: https\r\n"
      "X-Forwarded-For: 1.2.3.4\r\nForwarded: for=6.6.6.6\r\nX-Keep: yes\r\n\r\n");
  EXPECT_EQ(out,
            "GET /p HTTP/1.1\r\nHost: h\r\nX-Keep: yes\r\n"
            "X-Forwarded-For: 10.0.0.7\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: h\r\n"
            "X-Forwarded-Port: 8080\r\nVia: 1.1 usher\r\n\r\n");
}

TEST(RequestRewrite, ExtendsATrustedPeersForwardingFields) {
  RequestRewrite r = peer("10.0.0.7", true);
  r.forwarded = true;
  std::string out = rewrite_request(
      "GET /p HTTP/1.1\r\nHost: h:81\r\nX-Forwarded-For: 1.2.3.4\r\nX-Forwarded-For: 5.6.7.8\r\n"
      "X-Forwarded-Proto: https\r\nX-Forwarded-Host: example.com\r\nX-Forwarded-Port: 443\r\n"
      "Forwarded: for=1.2.3.4\r\n\r\n",
      r);
  EXPECT_EQ(out,
            "GET /p HTTP/1.1\r\nHost: h:81\r\n"
            "X-Forwarded-For: 1.2.3.4, 5.6.7.8, 10.0.0.7\r\nX-Forwarded-Proto: https\r\n"
            "X-Forwarded-Host: example.com\r\nX-Forwarded-Port: 443\r\n"
            "Forwarded: for=1.2.3.4, for=10.0.0.7;host=\"h:81\";proto=http\r\n"
            "Via: 1.1 usher\r\n\r\n");
}

TEST(RequestRewrite, ForwardedQuotesIpv6) {
  RequestRewrite r = peer("::1");
  r.forwarded = true;
  std::string out = rewrite_request("GET / HTTP/1.1\r\nHost: h\r\n\r\n", r);
  EXPECT_NE(out.find("Forwarded: for=\"[::1]\";host=\"h\";proto=http\r\n"), std::string::npos);
}

TEST(RequestRewrite, NormalisesFraming) {
  std::string out = rewrite_request(
      "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 003\r\n\r\n");
  EXPECT_NE(out.find("\r\nContent-Length: 3\r\n"), std::string::npos);
  EXPECT_EQ(out.find("003"), std::string::npos);
  RequestRewrite r = peer("1.1.1.1");
  r.strip_expect = true;
  out = rewrite_request(
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n",
      r);
  EXPECT_NE(out.find("\r\nTransfer-Encoding: chunked\r\n"), std::string::npos);
  EXPECT_EQ(out.find("Expect"), std::string::npos);
}

TEST(RequestRewrite, KeepsUpgrade) {
  std::string out = rewrite_request(
      "GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n");
  EXPECT_NE(out.find("Connection: upgrade\r\nUpgrade: websocket\r\n"), std::string::npos);
}

TEST(RequestRewrite, RewritesTheTargetPrefix) {
  RequestRewrite r = peer("1.1.1.1");
  r.strip = 4;
  EXPECT_TRUE(rewrite_request("GET /api/users?x=1 HTTP/1.1\r\nHost: h\r\n\r\n", r)
                  .starts_with("GET /users?x=1 HTTP/1.1\r\n"));
  r.new_prefix = "/v2/";
  r.strip = 5;
  EXPECT_TRUE(rewrite_request("GET /api/users HTTP/1.1\r\nHost: h\r\n\r\n", r)
                  .starts_with("GET /v2/users HTTP/1.1\r\n"));
}

TEST(RequestRewrite, ReplacesTheRequestIdWhenGiven) {
  RequestRewrite r = peer("1.1.1.1");
  r.request_id = "abc-1";
  std::string out = rewrite_request("GET / HTTP/1.1\r\nHost: h\r\nX-Request-Id: bad id\r\n\r\n", r);
  EXPECT_EQ(out.find("bad id"), std::string::npos);
  EXPECT_NE(out.find("X-Request-Id: abc-1\r\n"), std::string::npos);
  // Without request ids the client's field travels untouched.
  out = rewrite_request("GET / HTTP/1.1\r\nHost: h\r\nX-Request-Id: mine\r\n\r\n");
  EXPECT_NE(out.find("X-Request-Id: mine\r\n"), std::string::npos);
}

TEST(RequestRewrite, RemovesOrUnprefixesTheStickyCookie) {
  RequestRewrite r = peer("1.1.1.1");
  r.sticky = {"SERVERID", false};
  std::string out = rewrite_request(
      "GET / HTTP/1.1\r\nHost: h\r\nCookie: a=1; SERVERID=abc; b=2\r\nCookie: SERVERID=x\r\n\r\n",
      r);
  EXPECT_NE(out.find("\r\nCookie: a=1; b=2\r\nX-Forwarded"), std::string::npos) << out;
  EXPECT_EQ(out.find("SERVERID"), std::string::npos);
  r.sticky = {"JSESSIONID", true};
  out = rewrite_request("GET / HTTP/1.1\r\nHost: h\r\nCookie: JSESSIONID=abc~s1; z=9\r\n\r\n", r);
  EXPECT_NE(out.find("\r\nCookie: JSESSIONID=s1; z=9\r\n"), std::string::npos) << out;
}

config::HeaderTemplate text_then_ip(std::string text) {
  config::HeaderTemplate t;
  t.parts.push_back({std::move(text), config::HeaderTemplate::Variable::kNone});
  t.parts.push_back({{}, config::HeaderTemplate::Variable::kClientIp});
  return t;
}

TEST(RequestRewrite, AppliesHeaderEdits) {
  config::HeaderPolicy edits;
  edits.remove = {"x-debug"};
  edits.set = {{"X-Tier", text_then_ip("gold ")}};
  edits.add = {{"X-Extra", text_then_ip("")}};
  RequestRewrite r = peer("1.1.1.1");
  r.edits = &edits;
  r.values.client_ip = "9.9.9.9";
  std::string out = rewrite_request(
      "GET / HTTP/1.1\r\nHost: h\r\nX-Debug: 1\r\nX-Tier: free\r\nX-Extra: a\r\n\r\n", r);
  EXPECT_EQ(out.find("X-Debug"), std::string::npos);
  EXPECT_EQ(out.find("free"), std::string::npos);
  EXPECT_NE(out.find("X-Extra: a\r\n"), std::string::npos);
  EXPECT_NE(out.find("X-Tier: gold 9.9.9.9\r\nX-Extra: 9.9.9.9\r\n"), std::string::npos);
}

TEST(RequestRewrite, FailsCleanlyWhenTooSmall) {
  std::vector<http1::Header> scratch(10);
  http1::RequestHead head;
  http1::ParseError error;
  size_t scanned = 0;
  std::string text = "GET / HTTP/1.1\r\nHost: h\r\n\r\n";
  ASSERT_EQ(http1::parse_request(text, {}, scratch, scanned, head, error),
            http1::ParseStatus::kComplete);
  char out[20];
  EXPECT_EQ(write_request_head(head, peer("1.1.1.1"), out, sizeof out), 0u);
}

ResponseRewrite connection(bool keep_alive, bool http10, bool dechunk) {
  ResponseRewrite r;
  r.client_keep_alive = keep_alive;
  r.client_http10 = http10;
  r.dechunk = dechunk;
  return r;
}

std::string rewrite_response(const std::string& text, const ResponseRewrite& rewrite,
                             http1::Method method = http1::Method::kGet) {
  std::vector<http1::Header> scratch(100);
  http1::ResponseHead head;
  http1::ParseError error;
  size_t scanned = 0;
  EXPECT_EQ(http1::parse_response(text, {}, scratch, method, scanned, head, error),
            http1::ParseStatus::kComplete);
  char out[4096];
  return std::string(out, write_response_head(head, rewrite, out, sizeof out));
}

TEST(ResponseRewrite, ClosingAndHttp10Clients) {
  EXPECT_EQ(
      rewrite_response("HTTP/1.0 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\n",
                       connection(false, false, false)),
      "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\nVia: 1.1 usher\r\n\r\n");
  EXPECT_EQ(rewrite_response("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                             connection(false, true, true)),
            "HTTP/1.1 200 OK\r\nConnection: close\r\nVia: 1.1 usher\r\n\r\n");
  EXPECT_EQ(
      rewrite_response("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n",
                       connection(true, true, false)),
      "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\nVia: 1.1 usher\r\n\r\n");
}

TEST(ResponseRewrite, HeadResponsesKeepTheirContentLength) {
  EXPECT_EQ(rewrite_response("HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n",
                             connection(true, false, false), http1::Method::kHead),
            "HTTP/1.1 200 OK\r\nContent-Length: 99\r\nVia: 1.1 usher\r\n\r\n");
}

TEST(ResponseRewrite, AddsStickyCookieAndRequestIdToFinalResponsesOnly) {
  ResponseRewrite r;
  r.set_cookie = "Set-Cookie: SERVERID=ab; Path=/\r\n";
  r.request_id = "rid";
  EXPECT_EQ(rewrite_response("HTTP/1.1 204 No Content\r\nX-Request-Id: other\r\n\r\n", r),
            "HTTP/1.1 204 No Content\r\nSet-Cookie: SERVERID=ab; Path=/\r\nX-Request-Id: rid\r\n"
            "Via: 1.1 usher\r\n\r\n");
  r.interim = true;
  EXPECT_EQ(rewrite_response("HTTP/1.1 103 Early Hints\r\n\r\n", r),
            "HTTP/1.1 103 Early Hints\r\nVia: 1.1 usher\r\n\r\n");
}

TEST(ResponseRewrite, PrefixesTheApplicationCookieWithTheBackendId) {
  ResponseRewrite r;
  r.sticky_prefix = {"JSESSIONID", true};
  r.backend_id = "b1";
  std::string out = rewrite_response(
      "HTTP/1.1 204 No Content\r\nSet-Cookie: JSESSIONID=s9; Path=/\r\nSet-Cookie: other=1\r\n\r\n",
      r);
  EXPECT_NE(out.find("Set-Cookie: JSESSIONID=b1~s9; Path=/\r\nSet-Cookie: other=1\r\n"),
            std::string::npos)
      << out;
}

TEST(ResponseRewrite, AppliesHeaderEditsWithTheBackendName) {
  config::HeaderPolicy edits;
  edits.remove = {"Server"};
  config::HeaderTemplate backend;
  backend.parts.push_back({{}, config::HeaderTemplate::Variable::kBackend});
  edits.add = {{"X-Served-By", backend}};
  ResponseRewrite r;
  r.edits = &edits;
  r.values.backend = "app-2";
  std::string out = rewrite_response("HTTP/1.1 204 No Content\r\nServer: secret/1.0\r\n\r\n", r);
  EXPECT_EQ(out, "HTTP/1.1 204 No Content\r\nX-Served-By: app-2\r\nVia: 1.1 usher\r\n\r\n");
}

}  // namespace
}  // namespace usher::proxy::l7
