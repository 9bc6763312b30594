#include "proxy/l7/head_writer.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "codec/http1/head_parser.h"

namespace usher::proxy::l7 {
namespace {

std::string rewrite_request(const std::string& text, bool strip_expect = false) {
  std::vector<http1::Header> scratch(100);
  http1::RequestHead head;
  http1::ParseError error;
  size_t scanned = 0;
  EXPECT_EQ(http1::parse_request(text, {}, scratch, scanned, head, error),
            http1::ParseStatus::kComplete);
  char out[4096];
  size_t n = write_request_head(head, {"10.0.0.7", strip_expect}, out, sizeof out);
  return std::string(out, n);
}

TEST(RequestRewrite, RemovesHopByHopAndAddsForwardingFields) {
  std::string out = rewrite_request(
      "GET /p HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, X-Hop\r\nKeep-Alive: 5\r\n"
      "X-Hop: secret\r\nTE: trailers\r\nProxy-Connection: x\r\nX-Forwarded-Proto: https\r\n"
      "X-Forwarded-For: 1.2.3.4\r\nX-Keep: yes\r\n\r\n");
  EXPECT_EQ(out,
            "GET /p HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 1.2.3.4\r\nX-Keep: yes\r\n"
            "X-Forwarded-For: 10.0.0.7\r\nX-Forwarded-Proto: http\r\nVia: 1.1 usher\r\n\r\n");
}

TEST(RequestRewrite, NormalisesFraming) {
  std::string out = rewrite_request(
      "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 003\r\n\r\n");
  EXPECT_NE(out.find("\r\nContent-Length: 3\r\n"), std::string::npos);
  EXPECT_EQ(out.find("003"), std::string::npos);
  out = rewrite_request(
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n",
      true);
  EXPECT_NE(out.find("\r\nTransfer-Encoding: chunked\r\n"), std::string::npos);
  EXPECT_EQ(out.find("Expect"), std::string::npos);
}

TEST(RequestRewrite, KeepsUpgrade) {
  std::string out = rewrite_request(
      "GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n");
  EXPECT_NE(out.find("Connection: upgrade\r\nUpgrade: websocket\r\n"), std::string::npos);
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
  EXPECT_EQ(write_request_head(head, {"1.1.1.1", false}, out, sizeof out), 0u);
}

std::string rewrite_response(const std::string& text, ResponseRewrite rewrite,
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
                       {false, false, false}),
      "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\nVia: 1.1 usher\r\n\r\n");
  EXPECT_EQ(rewrite_response("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                             {false, true, true}),
            "HTTP/1.1 200 OK\r\nConnection: close\r\nVia: 1.1 usher\r\n\r\n");
  EXPECT_EQ(
      rewrite_response("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n", {true, true, false}),
      "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\nVia: 1.1 usher\r\n\r\n");
}

TEST(ResponseRewrite, HeadResponsesKeepTheirContentLength) {
  EXPECT_EQ(rewrite_response("HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n", {true, false, false},
                             http1::Method::kHead),
            "HTTP/1.1 200 OK\r\nContent-Length: 99\r\nVia: 1.1 usher\r\n\r\n");
}

}  // namespace
}  // namespace usher::proxy::l7
