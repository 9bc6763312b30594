// What the backend gets of the trace context: usher's traceparent and the client's tracestate,
// in place of the client's fields, and nothing changed while tracing is off.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "codec/http1/head_parser.h"
#include "proxy/l7/head_writer.h"

namespace usher::proxy::l7 {
namespace {

std::string rewrite_request(const std::string& text, const RequestRewrite& rewrite) {
  std::vector<http1::Header> scratch(100);
  http1::RequestHead head;
  http1::ParseError error;
  size_t scanned = 0;
  EXPECT_EQ(http1::parse_request(text, {}, scratch, scanned, head, error),
            http1::ParseStatus::kComplete);
  char out[4096];
  return std::string(out, write_request_head(head, rewrite, out, sizeof out));
}

constexpr std::string_view kClient =
    "GET /p HTTP/1.1\r\nHost: h\r\n"
    "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\n"
    "TraceState: a=1\r\nTracestate: b=2\r\n\r\n";

TEST(TraceFields, ReplaceTheClientsAndComeFirst) {
  RequestRewrite r;
  r.peer_ip = "10.0.0.7";
  r.port = "80";
  r.traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-1111111111111111-01";
  r.tracestate = "a=1,b=2";
  const std::string out = rewrite_request(std::string(kClient), r);
  EXPECT_TRUE(
      out.starts_with("GET /p HTTP/1.1\r\n"
                      "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-1111111111111111-01\r\n"
                      "tracestate: a=1,b=2\r\nHost: h\r\n"))
      << out;
  EXPECT_EQ(out.find("00f067aa0ba902b7"), std::string::npos);
  EXPECT_EQ(out.find("TraceState"), std::string::npos);
  EXPECT_EQ(out.find("Tracestate"), std::string::npos);
}

TEST(TraceFields, PassThroughUntouchedWithoutTracing) {
  RequestRewrite r;
  r.peer_ip = "10.0.0.7";
  r.port = "80";
  const std::string out = rewrite_request(std::string(kClient), r);
  EXPECT_NE(out.find("traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\n"),
            std::string::npos);
  EXPECT_NE(out.find("TraceState: a=1\r\nTracestate: b=2\r\n"), std::string::npos);
}

}  // namespace
}  // namespace usher::proxy::l7
