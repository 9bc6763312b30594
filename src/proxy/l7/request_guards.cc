#include "proxy/l7/request_guards.h"

#include <fmt/format.h>

#include <chrono>
#include <cmath>

#include "proxy/l7/request_key.h"

namespace usher::proxy::l7 {

namespace {

uint64_t ceil_seconds(std::chrono::microseconds t) {
  return static_cast<uint64_t>((t.count() + 999'999) / 1'000'000);
}

// 429 with the draft-ietf-httpapi-ratelimit-headers fields: the policy (quota `q` over a window
// `w` in seconds: the burst, refilled in burst/rate seconds) and what is left of it now.
size_t write_rate_limited(const RateGuard& guard, const protect::RateDecision& decision,
                          std::string_view policy, LocalResponse response, net::Buffer& out) {
  const config::RateLimit& limit = guard.limit;
  const auto window = static_cast<uint64_t>(std::ceil(limit.burst / limit.per_second));
  const uint64_t retry = std::max<uint64_t>(1, ceil_seconds(decision.retry_after));
  char fields[512];
  auto written = fmt::format_to_n(
      fields, sizeof fields,
      "Retry-After: {}\r\nRateLimit-Policy: \"{}\";q={};w={}\r\nRateLimit: \"{}\";r={};t={}\r\n",
      retry, policy, limit.burst, std::max<uint64_t>(1, window), policy, decision.remaining, retry);
  // A policy name that does not fit a quoted string (or the buffer) leaves the draft's fields
  // out rather than write a broken one; Retry-After says what matters.
  if (written.size > sizeof fields || policy.find_first_of("\"\\") != std::string_view::npos) {
    written = fmt::format_to_n(fields, sizeof fields, "Retry-After: {}\r\n", retry);
  }
  response.status = 429;
  response.content_type = "text/plain; charset=utf-8";
  response.body = "429 Too Many Requests: rate limit exceeded\n";
  response.fields = {fields, std::min(written.size, sizeof fields)};
  return write_local_response(response, out.data(), out.capacity());
}

std::optional<protect::RateDecision> take(RateGuard& guard, const http1::RequestHead& head,
                                          const RequestInfo& info) {
  const uint64_t key = request_key_hash(head, guard.limit.key, info.client_ip.view());
  protect::RateDecision decision = guard.limiter.take(key, std::chrono::steady_clock::now());
  if (decision.allowed) return std::nullopt;
  return decision;
}

}  // namespace

GuardRefusal check_guards(Client& c, const http1::RequestHead& head, const RequestInfo& info,
                          const RouteTarget* target, LocalResponse base, net::Buffer& out) {
  metrics::Shard& metrics = c.worker.metrics();
  if (RateGuard* listener_rate = c.routes->guard.rate.get()) {
    if (auto refused = take(*listener_rate, head, info)) {
      metrics.listeners[c.routes->metric_id].rate_limited.add();
      c.current.guard = "rate_limit";
      return {429, write_rate_limited(*listener_rate, *refused, "listener", base, out)};
    }
  }
  if (!target || !target->guard) return {};
  const RouteGuard& guard = *target->guard;
  if (!guard.ip.empty() && !guard.ip.admits(info.client.client())) {
    metrics.routes[target->metric_id].denied.add();
    c.current.guard = "denied";
    base.status = 403;
    base.content_type = "text/plain; charset=utf-8";
    base.body = "403 Forbidden\n";
    return {403, write_local_response(base, out.data(), out.capacity())};
  }
  if (guard.rate) {
    if (auto refused = take(*guard.rate, head, info)) {
      metrics.routes[target->metric_id].rate_limited.add();
      c.current.guard = "rate_limit";
      return {429, write_rate_limited(*guard.rate, *refused, target->config->name, base, out)};
    }
  }
  return {};
}

}  // namespace usher::proxy::l7
