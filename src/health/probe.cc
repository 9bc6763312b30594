#include "health/probe.h"

#include <cerrno>
#include <cstring>
#include <vector>

#include "codec/http1/head_parser.h"
#include "net/socket.h"

namespace usher::health {

namespace {

std::string describe(const char* step, long error) {
  if (error == -ETIMEDOUT) return "timeout";
  return std::string(step) + ": " + std::strerror(static_cast<int>(-error));
}

// The checked connection, through TLS or not.
struct Conn {
  net::Socket& socket;
  tls::Stream* tls;

  net::Task<long> read(char* buffer, size_t length, uint64_t deadline) {
    if (tls) co_return co_await tls->read(buffer, length, deadline);
    co_return co_await socket.read(buffer, length, deadline);
  }
  net::Task<long> write_all(std::string_view bytes, uint64_t deadline) {
    if (tls) co_return co_await tls->write_all(bytes, {}, deadline) ? 0 : -EPIPE;
    for (size_t sent = 0; sent < bytes.size();) {
      long n = co_await socket.write(bytes.data() + sent, bytes.size() - sent, deadline);
      if (n <= 0) co_return n ? n : -EPIPE;
      sent += static_cast<size_t>(n);
    }
    co_return 0;
  }
};

// Reads on (the check asked for Connection: close) until the expected text shows up in the
// first 4 KiB of the body, the body ends, or the deadline passes.
net::Task<ProbeResult> expect_body(Conn conn, const config::HealthCheck& check, std::string& buffer,
                                   size_t body_start, size_t received, uint64_t deadline) {
  while (true) {
    std::string_view body(buffer.data() + body_start, received - body_start);
    if (body.find(check.expect_body) != std::string_view::npos)
      co_return ProbeResult{true, "body matched"};
    if (received == buffer.size()) break;
    long n = co_await conn.read(buffer.data() + received, buffer.size() - received, deadline);
    if (n < 0) co_return ProbeResult{false, describe("receive", n)};
    if (n == 0) break;
    received += static_cast<size_t>(n);
  }
  co_return ProbeResult{false, "body lacks '" + check.expect_body + "'"};
}

net::Task<ProbeResult> http_exchange(Conn conn, const config::HealthCheck& check,
                                     const std::string& request, uint64_t deadline) {
  if (long sent = co_await conn.write_all(request, deadline); sent < 0)
    co_return ProbeResult{false, describe("send", sent)};
  std::string response(8192, '\0');  // a head of up to 4 KiB, then 4 KiB of body
  std::vector<http1::Header> scratch(64);
  size_t received = 0;
  size_t scanned = 0;
  while (true) {
    long n = co_await conn.read(response.data() + received, response.size() - received, deadline);
    if (n <= 0)
      co_return ProbeResult{false, n == 0 ? "closed before answering" : describe("receive", n)};
    received += static_cast<size_t>(n);
    http1::ResponseHead head;
    http1::ParseError error;
    auto status = http1::parse_response({response.data(), received}, {1024, 4096, 64}, scratch,
                                        http1::Method::kGet, scanned, head, error);
    if (status == http1::ParseStatus::kError) {
      co_return ProbeResult{false, std::string("malformed response: ") + error.reason};
    }
    if (status == http1::ParseStatus::kIncomplete) {
      if (received >= 4096) co_return ProbeResult{false, "response head too large"};
      continue;
    }
    bool ok = head.status >= check.expect_status_min && head.status <= check.expect_status_max;
    if (!ok) co_return ProbeResult{false, "status " + std::to_string(head.status)};
    if (check.expect_body.empty()) co_return ProbeResult{true, std::to_string(head.status)};
    co_return co_await expect_body(conn, check, response, head.head_bytes, received, deadline);
  }
}

}  // namespace

std::string health_request(const config::HealthCheck& check, const Address& address) {
  std::string host = check.host.empty() ? address.to_string() : check.host;
  return "GET " + check.path + " HTTP/1.1\r\nHost: " + host +
         "\r\nUser-Agent: usher-health-check\r\nConnection: close\r\n\r\n";
}

net::Task<ProbeResult> probe(net::Reactor& reactor, const Address& address,
                             const config::HealthCheck& check, const std::string& request,
                             ProbeTls tls) {
  const uint64_t deadline = reactor.now_ms() + static_cast<uint64_t>(check.timeout.count());
  if (check.type == config::HealthCheck::Type::kUdp ||
      check.type == config::HealthCheck::Type::kDns)
    co_return co_await probe_datagram(reactor, address, check, deadline);
  int fd = net::Socket::open_tcp(address);
  if (fd < 0) co_return ProbeResult{false, describe("socket", -errno)};
  net::Socket socket(reactor, fd);
  long connected = co_await socket.connect(address, deadline);
  if (connected != 0) co_return ProbeResult{false, describe("connect", connected)};
  std::unique_ptr<tls::Stream> stream;
  if (tls.context) {
    SSL* ssl = tls.context->new_connection(tls.slot, address);
    if (!ssl) co_return ProbeResult{false, "tls: cannot create a connection"};
    stream = std::make_unique<tls::Stream>(ssl, socket);
    const tls::HandshakeFailure failure = co_await stream->handshake(deadline);
    if (failure == tls::HandshakeFailure::kTimeout) co_return ProbeResult{false, "timeout"};
    if (failure != tls::HandshakeFailure::kNone)
      co_return ProbeResult{false, "tls: " + tls::handshake_error(*stream, failure)};
  }
  if (check.type == config::HealthCheck::Type::kTcp)
    co_return ProbeResult{true, stream ? "handshake done" : "connected"};
  co_return co_await http_exchange(Conn{socket, stream.get()}, check, request, deadline);
}

}  // namespace usher::health
