#include "codec/http1/head_parser.h"

#include <gtest/gtest.h>

#include <cctype>
#include <memory>
#include <string>
#include <vector>

namespace usher::http1 {
namespace {

// Heads point into the parsed text, so each result keeps its own copy alive.
struct RequestParse {
  std::shared_ptr<const std::string> text;
  ParseStatus status;
  RequestHead head;
  ParseError error;
  std::vector<Header> scratch = std::vector<Header>(100);
};

RequestParse parse(const std::string& text, HeadLimits limits = {}) {
  RequestParse r;
  r.text = std::make_shared<const std::string>(text);
  size_t scanned = 0;
  r.status = parse_request(*r.text, limits, r.scratch, scanned, r.head, r.error);
  return r;
}

int rejection_status(const std::string& text, HeadLimits limits = {}) {
  RequestParse r = parse(text, limits);
  EXPECT_EQ(r.status, ParseStatus::kError) << "accepted: " << text;
  return r.error.http_status;
}

TEST(RequestHead, ParsesASimpleGet) {
  std::string text = "GET /a?b=c HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\nNEXT";
  RequestParse r = parse(text);
  ASSERT_EQ(r.status, ParseStatus::kComplete);
  EXPECT_EQ(r.head.method, Method::kGet);
  EXPECT_EQ(r.head.target, "/a?b=c");
  EXPECT_EQ(r.head.version_minor, 1);
  ASSERT_EQ(r.head.headers.size(), 2u);
  EXPECT_EQ(r.head.headers[0].id, HeaderId::kHost);
  EXPECT_EQ(r.head.headers[0].value, "example.com");
  EXPECT_EQ(r.head.framing.kind, Framing::Kind::kNone);
  EXPECT_TRUE(r.head.keep_alive);
  EXPECT_EQ(r.head.head_bytes, text.size() - 4);
}

// The fields usher acts on are recognised in any case, and only under their exact names:
// "Content_Length" or "Content-Lengths" are other fields (a proxy that took them for framing
// would disagree with the backend about where the body ends).
TEST(RequestHead, KnowsItsFieldsInAnyCaseAndOnlyUnderTheirNames) {
  struct Case {
    std::string name;
    std::string value;
    HeaderId id;
  };
  const Case known[] = {
      {"host", "h", HeaderId::kHost},
      {"content-length", "0", HeaderId::kContentLength},
      {"transfer-encoding", "chunked", HeaderId::kTransferEncoding},
      {"connection", "keep-alive", HeaderId::kConnection},
      {"keep-alive", "timeout=5", HeaderId::kKeepAlive},
      {"proxy-connection", "x", HeaderId::kProxyConnection},
      {"te", "trailers", HeaderId::kTe},
      {"upgrade", "websocket", HeaderId::kUpgrade},
      {"expect", "100-continue", HeaderId::kExpect},
      {"x-forwarded-for", "192.0.2.1", HeaderId::kXForwardedFor},
      {"x-forwarded-proto", "https", HeaderId::kXForwardedProto},
      {"via", "1.1 a", HeaderId::kVia},
      {"trailer", "x", HeaderId::kTrailer},
      {"idempotency-key", "k", HeaderId::kIdempotencyKey},
      {"cookie", "a=b", HeaderId::kCookie},
      {"set-cookie", "a=b", HeaderId::kSetCookie},
      {"x-request-id", "r", HeaderId::kXRequestId},
      {"x-forwarded-host", "h", HeaderId::kXForwardedHost},
      {"x-forwarded-port", "80", HeaderId::kXForwardedPort},
      {"forwarded", "for=192.0.2.1", HeaderId::kForwarded},
      {"traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
       HeaderId::kTraceparent},
      {"tracestate", "a=b", HeaderId::kTracestate},
  };
  auto id_of = [](const std::string& name, const std::string& value) {
    std::string host = name == "host" || name == "HOST" || name == "Host" ? "" : "Host: h\r\n";
    RequestParse r = parse("GET / HTTP/1.1\r\n" + host + name + ": " + value + "\r\n\r\n");
    EXPECT_EQ(r.status, ParseStatus::kComplete) << name;
    for (const Header& h : r.head.headers) {
      if (h.name == name) return h.id;
    }
    ADD_FAILURE() << name << " not among the fields";
    return HeaderId::kOther;
  };
  for (const Case& c : known) {
    std::string upper = c.name, title = c.name;
    for (char& ch : upper) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    for (size_t i = 0; i < title.size(); ++i) {
      if (i == 0 || title[i - 1] == '-') {
        title[i] = static_cast<char>(std::toupper(static_cast<unsigned char>(title[i])));
      }
    }
    EXPECT_EQ(id_of(c.name, c.value), c.id) << c.name;
    EXPECT_EQ(id_of(upper, c.value), c.id) << upper;
    EXPECT_EQ(id_of(title, c.value), c.id) << title;
    EXPECT_EQ(id_of(c.name + "s", c.value), HeaderId::kOther) << c.name << "s";
    EXPECT_EQ(id_of(c.name.substr(1), c.value), HeaderId::kOther) << c.name.substr(1);
    for (size_t i = 0; i < c.name.size(); ++i) {
      // Token characters next to the right one, and those that bit 0x20 could confuse with it.
      for (char other : {'_', '.', '~', '^', '`', '|', '!', '0'}) {
        std::string near = c.name;
        near[i] = other;
        EXPECT_EQ(id_of(near, c.value), HeaderId::kOther) << near;
      }
    }
  }
}

TEST(RequestHead, TrimsOptionalWhitespaceAroundValues) {
  RequestParse r = parse("GET / HTTP/1.1\r\nHost:   h \t\r\nX-A:\r\n\r\n");
  ASSERT_EQ(r.status, ParseStatus::kComplete);
  EXPECT_EQ(r.head.headers[0].value, "h");
  EXPECT_EQ(r.head.headers[1].value, "");
}

TEST(RequestHead, IncompleteUntilTheEmptyLine) {
  std::string text = "POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\n";
  for (size_t n = 0; n < text.size(); ++n) {
    EXPECT_EQ(parse(text.substr(0, n)).status, ParseStatus::kIncomplete) << n;
  }
  RequestParse r = parse(text);
  ASSERT_EQ(r.status, ParseStatus::kComplete);
  EXPECT_EQ(r.head.framing.kind, Framing::Kind::kLength);
  EXPECT_EQ(r.head.framing.length, 5u);
}

TEST(RequestHead, ByteAtATimeScansOnce) {
  std::string text = "GET / HTTP/1.1\r\nHost: h\r\nX: y\r\n\r\n";
  std::vector<Header> scratch(10);
  size_t scanned = 0;
  RequestHead head;
  ParseError error;
  for (size_t n = 1; n < text.size(); ++n) {
    ASSERT_EQ(parse_request(std::string_view(text).substr(0, n), {}, scratch, scanned, head, error),
              ParseStatus::kIncomplete);
    EXPECT_LE(scanned, n);
  }
  EXPECT_EQ(parse_request(text, {}, scratch, scanned, head, error), ParseStatus::kComplete);
}

TEST(RequestHead, SkipsLeadingEmptyLines) {
  RequestParse r = parse("\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n");
  ASSERT_EQ(r.status, ParseStatus::kComplete);
  EXPECT_EQ(r.head.target, "/");
}

TEST(RequestHead, ChunkedWithOtherCodings) {
  RequestParse r = parse("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n");
  ASSERT_EQ(r.status, ParseStatus::kComplete);
  EXPECT_EQ(r.head.framing.kind, Framing::Kind::kChunked);
  EXPECT_EQ(r.head.framing.transfer_codings, "gzip, chunked");
}

TEST(RequestHead, IdenticalContentLengthFieldsAreOneLength) {
  RequestParse r =
      parse("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 7\r\nContent-Length: 7\r\n\r\n");
  ASSERT_EQ(r.status, ParseStatus::kComplete);
  EXPECT_EQ(r.head.framing.length, 7u);
}

TEST(RequestHead, ConnectionSemantics) {
  EXPECT_FALSE(parse("GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n").head.keep_alive);
  EXPECT_FALSE(parse("GET / HTTP/1.0\r\n\r\n").head.keep_alive);
  EXPECT_TRUE(parse("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").head.keep_alive);
  RequestParse r =
      parse("GET / HTTP/1.1\r\nHost: h\r\nConnection: X-Secret, keep-alive\r\nX-Secret: 1\r\n\r\n");
  ASSERT_EQ(r.status, ParseStatus::kComplete);
  EXPECT_TRUE(r.head.headers[2].connection_listed);
}

TEST(RequestHead, UpgradeAndExpect) {
  RequestParse r =
      parse("GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n");
  EXPECT_TRUE(r.head.upgrade);
  EXPECT_EQ(r.head.upgrade_protocol, "websocket");
  RequestParse e =
      parse("PUT / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n");
  EXPECT_TRUE(e.head.expect_continue);
}

// Every framing ambiguity RFC 9112 tells a server to refuse.
TEST(RequestHeadRejects, ContentLengthWithTransferEncoding) {
  EXPECT_EQ(
      rejection_status(
          "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"),
      400);
  EXPECT_EQ(
      rejection_status(
          "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n"),
      400);
}

TEST(RequestHeadRejects, DifferingOrMalformedContentLength) {
  for (const char* value :
       {"3, 4", "3, 3", "3,3", "-1", "+3", "3a", "0x10", "", " ", "1 2", "99999999999999999999"}) {
    EXPECT_EQ(rejection_status(std::string("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: ") +
                               value + "\r\n\r\n"),
              400)
        << value;
  }
  EXPECT_EQ(rejection_status(
                "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n"),
            400);
}

TEST(RequestHeadRejects, TransferEncodingNotEndingInChunked) {
  EXPECT_EQ(rejection_status("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n"), 400);
  EXPECT_EQ(
      rejection_status("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"),
      400);
  EXPECT_EQ(rejection_status("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: xchunked\r\n\r\n"),
            400);
  EXPECT_EQ(
      rejection_status("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked;q=1\r\n\r\n"),
      400);
}

TEST(RequestHeadRejects, ChunkedTwice) {
  EXPECT_EQ(
      rejection_status("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, chunked\r\n\r\n"),
      400);
  EXPECT_EQ(rejection_status("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: "
                             "chunked\r\nTransfer-Encoding: chunked\r\n\r\n"),
            400);
}

TEST(RequestHeadRejects, TransferEncodingInHttp10) {
  EXPECT_EQ(rejection_status("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"), 400);
}

TEST(RequestHeadRejects, ObsFold) {
  EXPECT_EQ(rejection_status("GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n"), 400);
  EXPECT_EQ(rejection_status("GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n\tb\r\n\r\n"), 400);
  EXPECT_EQ(rejection_status("GET / HTTP/1.1\r\n Host: h\r\n\r\n"), 400);
}

TEST(RequestHeadRejects, WhitespaceBeforeColon) {
  RequestParse r = parse("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding : chunked\r\n\r\n");
  ASSERT_EQ(r.status, ParseStatus::kError);
  EXPECT_EQ(r.error.http_status, 400);
  EXPECT_STREQ(r.error.reason, "whitespace between field name and colon");
  EXPECT_EQ(r.error.offset, 43u);  // the space after "Transfer-Encoding"
  EXPECT_EQ(rejection_status("GET / HTTP/1.1\r\nHost\t: h\r\n\r\n"), 400);
}

TEST(RequestHeadRejects, ControlCharactersInValues) {
  EXPECT_EQ(rejection_status(std::string("GET / HTTP/1.1\r\nHost: h\r\nX: a\0b\r\n\r\n", 35)), 400);
  EXPECT_EQ(rejection_status("GET / HTTP/1.1\r\nHost: h\r\nX: a\rb\r\n\r\n"), 400);
  EXPECT_EQ(rejection_status("GET / HTTP/1.1\r\nHost: h\r\nX: a\nb\r\n\r\n"), 400);
  EXPECT_EQ(rejection_status("GET / HTTP/1.1\r\nHost: h\r\nX: a\x7f\r\n\r\n"), 400);
  EXPECT_EQ(rejection_status("GET / HTTP/1.1\r\nHost: h\r\nX: a\x01\r\n\r\n"), 400);
}

TEST(RequestHeadRejects, BareLineFeeds) {
  EXPECT_EQ(rejection_status("GET / HTTP/1.1\nHost: h\n\n"), 400);
  // Rejected as soon as the bare LF arrives, before the head is complete.
  EXPECT_EQ(rejection_status("GET / HTTP/1.1\nHost"), 400);
}

TEST(RequestHeadRejects, InvalidTokens) {
  EXPECT_EQ(rejection_status("G(T / HTTP/1.1\r\nHost: h\r\n\r\n"), 400);
  EXPECT_EQ(rejection_status("GET / HTTP/1.1\r\nHo[st: h\r\n\r\n"), 400);
  EXPECT_EQ(rejection_status("GET / HTTP/1.1\r\n: h\r\n\r\n"), 400);
  EXPECT_EQ(rejection_status("GET / HTTP/1.1\r\nHost h\r\n\r\n"), 400);
  EXPECT_EQ(rejection_status("GET  / HTTP/1.1\r\nHost: h\r\n\r\n"), 400);
  EXPECT_EQ(rejection_status("GET /a b HTTP/1.1\r\nHost: h\r\n\r\n"), 400);
  EXPECT_EQ(rejection_status("GET /\x80 HTTP/1.1\r\nHost: h\r\n\r\n"), 400);
  EXPECT_EQ(rejection_status("GET / HTTP/1.1 \r\nHost: h\r\n\r\n"), 400);
  EXPECT_EQ(rejection_status("GET / http/1.1\r\nHost: h\r\n\r\n"), 400);
  EXPECT_EQ(rejection_status("GET example HTTP/1.1\r\nHost: h\r\n\r\n"), 400);
}

TEST(RequestHeadRejects, HostRules) {
  EXPECT_EQ(rejection_status("GET / HTTP/1.1\r\n\r\n"), 400);
  EXPECT_EQ(rejection_status("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"), 400);
}

TEST(RequestHeadRejects, VersionsAndMethods) {
  EXPECT_EQ(rejection_status("GET / HTTP/2.0\r\nHost: h\r\n\r\n"), 505);
  EXPECT_EQ(rejection_status("CONNECT h:443 HTTP/1.1\r\nHost: h\r\n\r\n"), 501);
}

TEST(RequestHeadRejects, Limits) {
  HeadLimits limits{64, 256, 4};
  EXPECT_EQ(
      rejection_status("GET /" + std::string(100, 'a') + " HTTP/1.1\r\nHost: h\r\n\r\n", limits),
      414);
  EXPECT_EQ(rejection_status("GET /" + std::string(100, 'a'), limits), 414);
  EXPECT_EQ(rejection_status(
                "GET / HTTP/1.1\r\nHost: h\r\nX: " + std::string(300, 'a') + "\r\n\r\n", limits),
            431);
  EXPECT_EQ(rejection_status("GET / HTTP/1.1\r\nHost: h\r\nX: " + std::string(300, 'a'), limits),
            431);
  EXPECT_EQ(
      rejection_status("GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 1\r\nC: 1\r\nD: 1\r\n\r\n", limits),
      431);
}

struct ResponseParse {
  std::shared_ptr<const std::string> text;
  ParseStatus status;
  ResponseHead head;
  ParseError error;
  std::vector<Header> scratch = std::vector<Header>(100);
};

ResponseParse parse_resp(const std::string& text, Method method = Method::kGet) {
  ResponseParse r;
  r.text = std::make_shared<const std::string>(text);
  size_t scanned = 0;
  r.status = parse_response(*r.text, {}, r.scratch, method, scanned, r.head, r.error);
  return r;
}

TEST(ResponseHead, Framing) {
  auto r = parse_resp("HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n");
  ASSERT_EQ(r.status, ParseStatus::kComplete);
  EXPECT_EQ(r.head.status, 200);
  EXPECT_EQ(r.head.reason, "OK");
  EXPECT_EQ(r.head.framing.kind, Framing::Kind::kLength);
  EXPECT_TRUE(r.head.keep_alive);

  r = parse_resp("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
  EXPECT_EQ(r.head.framing.kind, Framing::Kind::kChunked);

  r = parse_resp("HTTP/1.1 200 OK\r\n\r\n");
  EXPECT_EQ(r.head.framing.kind, Framing::Kind::kUntilClose);
  EXPECT_FALSE(r.head.keep_alive);

  r = parse_resp("HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n", Method::kHead);
  EXPECT_EQ(r.head.framing.kind, Framing::Kind::kNone);
  for (const char* line :
       {"HTTP/1.1 204 No Content", "HTTP/1.1 304 Not Modified", "HTTP/1.1 100 Continue"}) {
    EXPECT_EQ(parse_resp(std::string(line) + "\r\nContent-Length: 3\r\n\r\n").head.framing.kind,
              Framing::Kind::kNone);
  }
  r = parse_resp("HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n");
  ASSERT_EQ(r.status, ParseStatus::kComplete);
  EXPECT_EQ(r.head.reason, "");
}

TEST(ResponseHead, AmbiguousFramingIsABadGateway) {
  for (const char* text : {
           "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
           "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
           "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
           "HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n",
           "HTTP/1.1 200 OK\nContent-Length: 3\n\n",
           "HTTP/1.1 2000 OK\r\n\r\n",
           "HTTP/1.1 099 OK\r\n\r\n",
           "HTTX/1.1 200 OK\r\n\r\n",
       }) {
    auto r = parse_resp(text);
    EXPECT_EQ(r.status, ParseStatus::kError) << text;
    EXPECT_EQ(r.error.http_status, 502) << text;
  }
}

// Chunked not last: a body in codings the client was not told of, delimited by the close.
TEST(ResponseHead, TransferCodingsNotEndingInChunkedAreABadGateway) {
  for (const char* text : {
           "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
           "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
           "HTTP/1.0 200 OK\r\nTransfer-Encoding: identity\r\n\r\n",
       }) {
    auto r = parse_resp(text);
    EXPECT_EQ(r.status, ParseStatus::kError) << text;
    EXPECT_EQ(r.error.http_status, 502) << text;
    EXPECT_EQ(r.error.offset, std::string_view(text).find(": ") + 2) << text;
  }
  auto r = parse_resp("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n");
  ASSERT_EQ(r.status, ParseStatus::kComplete);
  EXPECT_EQ(r.head.framing.kind, Framing::Kind::kChunked);
  EXPECT_EQ(r.head.framing.transfer_codings, "gzip, chunked");
  // No body, so no framing: the field describes nothing here.
  r = parse_resp("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", Method::kHead);
  ASSERT_EQ(r.status, ParseStatus::kComplete);
  EXPECT_EQ(r.head.framing.kind, Framing::Kind::kNone);
}

}  // namespace
}  // namespace usher::http1
