// The datagram checks. udp: `send` goes to the backend, and a reply that contains `expect`
// passes. dns: a query for `query`, type A, with a random id; a reply with that id, no error
// and at least one answer passes (NXDOMAIN, or a name without an address, fails). Each check has
// a socket of its own, connected to the backend, so that only the backend's datagrams reach it
// and an ICMP port unreachable comes back as "Connection refused".
#include <sys/random.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

#include "health/probe.h"
#include "net/socket.h"

namespace usher::health {

namespace {

constexpr size_t kMaxReply = 4096;
constexpr uint16_t kRecursionDesired = 0x0100;
constexpr uint16_t kResponse = 0x8000;  // QR
constexpr const char* kRcodes[] = {"NOERROR",  "FORMERR", "SERVFAIL",
                                   "NXDOMAIN", "NOTIMP",  "REFUSED"};

uint16_t read16(const unsigned char* p) {
  return static_cast<uint16_t>(p[0] << 8 | p[1]);
}

void put16(std::string& out, uint16_t value) {
  out.push_back(static_cast<char>(value >> 8));
  out.push_back(static_cast<char>(value & 0xff));
}

// A query for `name` (type A, class IN, recursion desired); empty when a label is too long.
std::string dns_query(uint16_t id, std::string_view name) {
  std::string out;
  put16(out, id);
  put16(out, kRecursionDesired);
  for (uint16_t count : {1, 0, 0, 0}) put16(out, count);  // one question
  while (!name.empty()) {
    const size_t dot = name.find('.');
    const std::string_view label = name.substr(0, dot);
    if (label.size() > 63) return {};
    if (!label.empty()) {
      out.push_back(static_cast<char>(label.size()));
      out.append(label);
    }
    name = dot == std::string_view::npos ? std::string_view() : name.substr(dot + 1);
  }
  out.push_back('\0');
  put16(out, 1);  // A
  put16(out, 1);  // IN
  return out;
}

// The verdict on a reply to query `id`; nullopt for a datagram that answers another query.
std::optional<ProbeResult> dns_verdict(uint16_t id, std::string_view reply) {
  const auto* p = reinterpret_cast<const unsigned char*>(reply.data());
  if (reply.size() < 12 || read16(p) != id) return std::nullopt;
  const uint16_t flags = read16(p + 2);
  if (!(flags & kResponse)) return ProbeResult{false, "not a response"};
  const unsigned rcode = flags & 0x0f;
  if (rcode != 0) {
    const std::string name = rcode < std::size(kRcodes) ? kRcodes[rcode] : std::to_string(rcode);
    return ProbeResult{false, "rcode " + name};
  }
  const uint16_t answers = read16(p + 6);
  if (answers == 0) return ProbeResult{false, "no answer"};
  return ProbeResult{true, std::to_string(answers) + (answers == 1 ? " answer" : " answers")};
}

std::string describe(const char* step, long error) {
  if (error == -ETIMEDOUT) return "timeout";
  return std::string(step) + ": " + std::strerror(static_cast<int>(-error));
}

}  // namespace

net::Task<ProbeResult> probe_datagram(net::Reactor& reactor, const Address& address,
                                      const config::HealthCheck& check, uint64_t deadline) {
  const bool dns = check.type == config::HealthCheck::Type::kDns;
  uint16_t id = 0;
  if (dns && ::getrandom(&id, sizeof id, 0) != sizeof id) {
    co_return ProbeResult{false, describe("getrandom", -errno)};
  }
  const std::string request = dns ? dns_query(id, check.query) : check.send;
  if (request.empty()) co_return ProbeResult{false, "query has a label over 63 bytes"};
  const int fd = ::socket(address.family(), SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) co_return ProbeResult{false, describe("socket", -errno)};
  net::Socket socket(reactor, fd);
  if (::connect(fd, address.sockaddr_ptr(), address.length()) < 0)
    co_return ProbeResult{false, describe("connect", -errno)};
  if (::send(fd, request.data(), request.size(), 0) < 0)
    co_return ProbeResult{false, describe("send", -errno)};
  std::string reply(kMaxReply, '\0');
  while (true) {
    const long ready = co_await socket.wait_readable(deadline);
    if (ready < 0) co_return ProbeResult{false, describe("receive", ready)};
    const long n = socket.try_read(reply.data(), reply.size());
    if (n == -EAGAIN) continue;
    if (n < 0) co_return ProbeResult{false, describe("receive", n)};
    const std::string_view got(reply.data(), static_cast<size_t>(n));
    if (!dns) {
      if (got.find(check.expect) != std::string_view::npos)
        co_return ProbeResult{true, std::to_string(n) + " bytes"};
      co_return ProbeResult{false, "reply lacks the expected bytes"};
    }
    if (std::optional<ProbeResult> verdict = dns_verdict(id, got)) co_return *verdict;
  }
}

}  // namespace usher::health
