// The OTLP JSON export request and the exporter thread against a collector on loopback.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "loopback.h"
#include "trace/exporter.h"
#include "trace/otlp.h"

namespace usher::trace {
namespace {

using json = nlohmann::json;
using Text = SpanRecord::Text;

SpanRecord span(SpanKind kind, uint64_t id, uint64_t parent, uint16_t status) {
  SpanRecord r;
  r.trace = {0x4bf92f3577b34da6u, 0xa3ce929d0e0e4736u};
  r.span = id;
  r.parent = parent;
  r.start_ns = 1700000000123456789u;
  r.end_ns = 1700000000223456789u;
  r.status = status;
  r.kind = kind;
  r.retry = kind == SpanKind::kClient ? 1 : 0;
  r.set(Text::kMethod, "GET");
  r.set(Text::kPath, "/a\"b");
  r.set(Text::kRoute, "api");
  r.set(Text::kPool, "web");
  if (kind == SpanKind::kClient) {
    r.backend_family = AF_INET;
    r.backend_port = 9001;
    const uint8_t loopback[4] = {127, 0, 0, 1};
    std::memcpy(r.backend_ip, loopback, 4);
  }
  r.set(Text::kError, {});
  return r;
}

// Attribute key -> its value object.
json attributes(const json& span) {
  json out = json::object();
  for (const json& a : span["attributes"]) out[a["key"].get<std::string>()] = a["value"];
  return out;
}

TEST(OtlpJson, IsAnExportTraceServiceRequest) {
  const SpanRecord spans[] = {span(SpanKind::kServer, 0xa, 0x00f067aa0ba902b7u, 502),
                              span(SpanKind::kClient, 0xb, 0xa, 502)};
  std::string body;
  append_export_request(spans, "usher", body);
  const json request = json::parse(body);  // throws on anything that is not JSON
  ASSERT_EQ(request["resourceSpans"].size(), 1u);
  const json& resource = request["resourceSpans"][0];
  EXPECT_EQ(resource["resource"]["attributes"][0],
            json::parse(R"({"key":"service.name","value":{"stringValue":"usher"}})"));
  const json& scope = resource["scopeSpans"][0];
  EXPECT_EQ(scope["scope"]["name"], "usher");
  ASSERT_EQ(scope["spans"].size(), 2u);

  const json& server = scope["spans"][0];
  EXPECT_EQ(server["traceId"], "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_EQ(server["spanId"], "000000000000000a");
  EXPECT_EQ(server["parentSpanId"], "00f067aa0ba902b7");
  EXPECT_EQ(server["kind"], 2);
  EXPECT_EQ(server["name"], "GET");
  EXPECT_EQ(server["startTimeUnixNano"], "1700000000123456789");
  EXPECT_EQ(server["endTimeUnixNano"], "1700000000223456789");
  EXPECT_EQ(server["status"]["code"], 2);
  const json a = attributes(server);
  EXPECT_EQ(a["http.request.method"]["stringValue"], "GET");
  EXPECT_EQ(a["url.path"]["stringValue"], "/a\"b");
  EXPECT_EQ(a["http.response.status_code"]["intValue"], "502");
  EXPECT_EQ(a["usher.route"]["stringValue"], "api");
  EXPECT_EQ(a["usher.pool"]["stringValue"], "web");
  EXPECT_FALSE(a.contains("server.address"));

  const json& client = scope["spans"][1];
  EXPECT_EQ(client["kind"], 3);
  EXPECT_EQ(client["parentSpanId"], "000000000000000a");
  const json b = attributes(client);
  EXPECT_EQ(b["server.address"]["stringValue"], "127.0.0.1");
  EXPECT_EQ(b["server.port"]["intValue"], "9001");
  EXPECT_EQ(b["usher.retry"]["intValue"], "1");
}

TEST(OtlpJson, RootSpansHaveNoParentAndSuccessNoErrorStatus) {
  const SpanRecord spans[] = {span(SpanKind::kServer, 0xa, 0, 200)};
  std::string body;
  append_export_request(spans, "usher", body);
  const json s = json::parse(body)["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
  EXPECT_FALSE(s.contains("parentSpanId"));
  EXPECT_FALSE(s["status"].contains("code"));
}

TEST(OtlpJson, AnyBytesMakeValidJson) {
  SpanRecord r = span(SpanKind::kServer, 1, 0, 200);
  r.set(Text::kPath, std::string_view("/\x01\xff\\\"\n", 6));
  std::string body;
  append_export_request({&r, 1}, "usher", body);
  const json s = json::parse(body)["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
  EXPECT_EQ(attributes(s)["url.path"]["stringValue"], "/\x01\xc3\xbf\\\"\n");
}

// A collector on loopback: answers every POST with `status` (or never, when `answer` is false)
// and keeps the bodies.
class Collector {
 public:
  explicit Collector(int status = 200, bool answer = true) : status_(status), answer_(answer) {
    sockaddr_in a;
    fd_ = loopback_listener(16, a);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { serve(); });
  }
  ~Collector() {
    stopping_ = true;
    ::shutdown(fd_, SHUT_RDWR);
    thread_.join();
    ::close(fd_);
  }
  config::Tracing tracing() const {
    config::Tracing t;
    EXPECT_EQ(config::set_otlp_url("http://127.0.0.1:" + std::to_string(port_) + "/v1/traces", t),
              "");
    return t;
  }
  std::vector<std::string> bodies() {
    std::lock_guard lock(mutex_);
    return bodies_;
  }

 private:
  void serve() {
    while (!stopping_) {
      const int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) return;
      std::string in;
      char buffer[65536];
      size_t need = std::string::npos;
      while (need == std::string::npos || in.size() < need) {
        const ssize_t n = ::recv(c, buffer, sizeof buffer, 0);
        if (n <= 0) break;
        in.append(buffer, static_cast<size_t>(n));
        const size_t end = in.find("\r\n\r\n");
        if (need == std::string::npos && end != std::string::npos) {
          const size_t at = in.find("Content-Length: ");
          need = end + 4 + std::stoul(in.substr(at + 16));
        }
      }
      if (need != std::string::npos && in.size() >= need) {
        std::lock_guard lock(mutex_);
        bodies_.push_back(in.substr(in.find("\r\n\r\n") + 4));
        EXPECT_TRUE(in.starts_with("POST /v1/traces HTTP/1.1\r\n")) << in.substr(0, 100);
        EXPECT_NE(in.find("Content-Type: application/json\r\n"), std::string::npos);
      }
      if (answer_) {
        const std::string response =
            "HTTP/1.1 " + std::to_string(status_) + " X\r\nContent-Length: 2\r\n\r\n{}";
        ::send(c, response.data(), response.size(), MSG_NOSIGNAL);
      } else {
        while (!stopping_) std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
      ::close(c);
    }
  }

  int status_;
  bool answer_;
  int fd_;
  uint16_t port_ = 0;
  std::atomic<bool> stopping_{false};
  std::mutex mutex_;
  std::vector<std::string> bodies_;
  std::thread thread_;
};

void push(Channel& channel, int count) {
  for (int i = 0; i < count; ++i) {
    ASSERT_TRUE(channel.reserve(1));
    channel.reserved(0) = span(SpanKind::kServer, static_cast<uint64_t>(i + 1), 0, 200);
    channel.commit(1);
  }
}

size_t spans_in(const std::vector<std::string>& bodies) {
  size_t n = 0;
  for (const std::string& b : bodies) {
    n += json::parse(b)["resourceSpans"][0]["scopeSpans"][0]["spans"].size();
  }
  return n;
}

TEST(Exporter, SendsBatchesOfAtMost512) {
  Collector collector;
  Exporter exporter(collector.tracing(), 2);
  exporter.start();
  push(exporter.channel(0), 700);
  push(exporter.channel(1), 3);
  exporter.stop();  // sends what is left
  const auto bodies = collector.bodies();
  ASSERT_GE(bodies.size(), 2u);
  for (const std::string& b : bodies) {
    EXPECT_LE(json::parse(b)["resourceSpans"][0]["scopeSpans"][0]["spans"].size(), 512u);
  }
  EXPECT_EQ(spans_in(bodies), 703u);
  EXPECT_EQ(exporter.exported(), 703u);
  EXPECT_EQ(exporter.dropped(), 0u);
  EXPECT_EQ(exporter.failures(), 0u);
}

TEST(Exporter, ABatchWaitsAtMostASecond) {
  Collector collector;
  Exporter exporter(collector.tracing(), 1);
  exporter.start();
  push(exporter.channel(0), 5);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(3);
  while (exporter.exported() < 5 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(exporter.exported(), 5u);
  exporter.stop();
}

TEST(Exporter, ACollectorThatIsDownCostsDroppedSpansOnly) {
  config::Tracing down;
  {
    Collector closed;  // its port, then closed
    down = closed.tracing();
  }
  Exporter exporter(down, 1);
  exporter.start();
  push(exporter.channel(0), 600);  // a full batch goes at once, and fails
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(3);
  while (exporter.dropped() < 600 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  exporter.stop();
  EXPECT_EQ(exporter.dropped(), 600u);
  EXPECT_EQ(exporter.exported(), 0u);
  EXPECT_GE(exporter.failures(), 1u);
}

TEST(Exporter, ErrorStatusesAreFailures) {
  Collector collector(503);
  Exporter exporter(collector.tracing(), 1);
  exporter.start();
  push(exporter.channel(0), 10);
  exporter.stop();
  EXPECT_EQ(collector.bodies().size(), 1u);
  EXPECT_EQ(exporter.failures(), 1u);
  EXPECT_EQ(exporter.dropped(), 10u);
}

TEST(Exporter, ACollectorThatNeverAnswersTimesOutAndTheRingDropsMeanwhile) {
  Collector silent(200, false);
  Exporter exporter(silent.tracing(), 1);
  exporter.start();
  push(exporter.channel(0), 512);  // sent at once; the answer never comes
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  // While the exporter waits, the worker's ring fills and further spans are dropped there.
  Channel& channel = exporter.channel(0);
  size_t refused = 0;
  for (size_t i = 0; i < Channel::kSlots + 100; ++i) {
    if (!channel.reserve(1)) {
      ++refused;
      continue;
    }
    channel.reserved(0) = span(SpanKind::kServer, 1, 0, 200);
    channel.commit(1);
  }
  EXPECT_EQ(refused, 100u);
  EXPECT_EQ(channel.dropped(), 100u);
  const auto started = std::chrono::steady_clock::now();
  exporter.stop();
  EXPECT_LT(std::chrono::steady_clock::now() - started,
            std::chrono::milliseconds(Exporter::kTimeoutMs + 1000));
  EXPECT_GE(exporter.failures(), 1u);
  EXPECT_EQ(exporter.exported(), 0u);
  EXPECT_EQ(exporter.dropped(), 100u + 512u + Channel::kSlots);
}

TEST(Exporter, ClientSpansTakeTheTextsOfTheirRequestsServerSpan) {
  Collector collector;
  Exporter exporter(collector.tracing(), 1);
  Channel& channel = exporter.channel(0);
  push(channel, Exporter::kBatch - 1);
  // The next request's client span falls into the second batch, its server span into the first.
  ASSERT_TRUE(channel.reserve(2));
  channel.reserved(0) = span(SpanKind::kServer, 0x51, 0, 200);
  SpanRecord& client = channel.reserved(1);
  client = span(SpanKind::kClient, 0xc1, 0x51, 200);
  client.clear_texts();  // as a worker leaves it
  client.set(Text::kError, "reset");
  channel.commit(2);
  exporter.start();
  exporter.stop();
  const auto bodies = collector.bodies();
  ASSERT_EQ(bodies.size(), 2u);
  const json spans = json::parse(bodies[1])["resourceSpans"][0]["scopeSpans"][0]["spans"];
  ASSERT_EQ(spans.size(), 1u);
  const json a = attributes(spans[0]);
  EXPECT_EQ(spans[0]["name"], "GET");
  EXPECT_EQ(a["url.path"]["stringValue"], "/a\"b");
  EXPECT_EQ(a["usher.route"]["stringValue"], "api");
  EXPECT_EQ(a["usher.pool"]["stringValue"], "web");
  EXPECT_EQ(a["server.port"]["intValue"], "9001");
  EXPECT_EQ(a["error.type"]["stringValue"], "reset");
}

TEST(Channel, ARequestsSpansGoTogetherOrNotAtAll) {
  Channel channel;
  ASSERT_TRUE(channel.reserve(Channel::kSlots - 1));
  channel.commit(Channel::kSlots - 1);
  EXPECT_FALSE(channel.reserve(2));
  EXPECT_EQ(channel.dropped(), 2u);
  EXPECT_TRUE(channel.reserve(1));
  channel.commit(1);
  EXPECT_EQ(channel.drain(Channel::kSlots, [](const SpanRecord&) {}), Channel::kSlots);
  EXPECT_TRUE(channel.reserve(Channel::kSlots));
}

TEST(Exporter, WithoutTracingSpansAreDropped) {
  Exporter exporter(std::nullopt, 1);
  exporter.start();
  push(exporter.channel(0), 4);
  exporter.stop();
  EXPECT_EQ(exporter.dropped(), 4u);
}

}  // namespace
}  // namespace usher::trace
