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

net::Task<ProbeResult> http_exchange(net::Socket& socket, const config::HealthCheck& check,
                                     const std::string& request, uint64_t deadline) {
  for (size_t sent = 0; sent < request.size();) {
    long n = co_await socket.write(request.data() + sent, request.size() - sent, deadline);
    if (n <= 0) co_return ProbeResult{false, describe("send", n ? n : -EPIPE)};
    sent += static_cast<size_t>(n);
  }
  std::string response(4096, '\0');
  std::vector<http1::Header> scratch(64);
  size_t received = 0;
  size_t scanned = 0;
  while (true) {
    long n = co_await socket.read(response.data() + received, response.size() - received, deadline);
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
      if (received == response.size()) co_return ProbeResult{false, "response head too large"};
      continue;
    }
    bool ok = head.status >= check.expect_status_min && head.status <= check.expect_status_max;
    co_return ProbeResult{ok, (ok ? "" : "status ") + std::to_string(head.status)};
  }
}

}  // namespace

std::string health_request(const config::HealthCheck& check, const Address& address) {
  std::string host = check.host.empty() ? address.to_string() : check.host;
  return "GET " + check.path + " HTTP/1.1\r\nHost: " + host +
         "\r\nUser-Agent: usher-health-check\r\nConnection: close\r\n\r\n";
}

net::Task<ProbeResult> probe(net::Reactor& reactor, const Address& address,
                             const config::HealthCheck& check, const std::string& request) {
  const uint64_t deadline = reactor.now_ms() + static_cast<uint64_t>(check.timeout.count());
  int fd = net::Socket::open_tcp(address);
  if (fd < 0) co_return ProbeResult{false, describe("socket", -errno)};
  net::Socket socket(reactor, fd);
  long connected = co_await socket.connect(address, deadline);
  if (connected != 0) co_return ProbeResult{false, describe("connect", connected)};
  if (check.type == config::HealthCheck::Type::kTcp) co_return ProbeResult{true, "connected"};
  co_return co_await http_exchange(socket, check, request, deadline);
}

}  // namespace usher::health
