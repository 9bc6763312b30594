#include "proxy/l7/request_guards.h"

#include <fmt/format.h>

#include <cerrno>
#include <chrono>
#include <cmath>

#include "cluster/service.h"
#include "net/signal.h"
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

uint64_t now_us() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}

protect::RateDecision refused_for(uint64_t retry_after_us) {
  const auto wait = std::chrono::microseconds(retry_after_us);
  return {.allowed = false, .remaining = 0, .retry_after = wait, .reset = wait};
}

// A request waits for at most this many answers about its keys; a key so contended that its
// batches went to others each time is refused for an interval rather than decided locally.
constexpr uint8_t kMaxLeaseWaits = 3;

uint8_t waits(const Client& c) {
  return c.lease ? c.lease->count : 0;
}

// How a request's cluster-scoped limits are decided, read once for all of its limits: a Redis
// that comes back between two reads would otherwise start an ask that nobody sends.
enum class ClusterMode : uint8_t { kShared, kLocal, kDeny };

ClusterMode cluster_mode(Client& c) {
  const cluster::WorkerPort* port = c.worker.cluster_port();
  if (port && port->redis_up()) return ClusterMode::kShared;
  return c.config().cluster.on_redis_failure == config::Cluster::OnRedisFailure::kDeny
             ? ClusterMode::kDeny
             : ClusterMode::kLocal;
}

// Whether a cluster-scoped limit can decide the key now; if not, the key's ask is on its way
// (sent here if it was not) and the request waits for it (Client::lease).
bool lease_ready(Client& c, const RateGuard& guard, uint64_t key, uint64_t now, ClusterMode mode) {
  if (!guard.shared || mode != ClusterMode::kShared || waits(c) >= kMaxLeaseWaits) return true;
  cluster::WorkerPort& port = *c.worker.cluster_port();
  cluster::LeaseTable& table = guard.shared->table(port.index());
  const cluster::LeaseTable::Verdict verdict = table.peek(key, now);
  if (verdict == cluster::LeaseTable::Verdict::kAsk) {
    const cluster::LeaseTable::Decision d = table.take(key, now);
    if (!port.send({guard.shared, d.ask})) {
      table.abandon(key);
      return true;  // the ring is full: decided locally
    }
  } else if (verdict != cluster::LeaseTable::Verdict::kWait) {
    return true;
  }
  if (!c.lease) c.lease = std::make_unique<LeaseWaits>();
  c.lease->limit = guard.shared;
  c.lease->key = key;
  return false;
}

struct Taken {
  std::optional<protect::RateDecision> refused{};
  bool unavailable = false;  // cluster-scoped, Redis unreachable and on_redis_failure: deny
};

// `now` and `mode`: what lease_ready saw, so that the table decides as it said it would.
Taken take(Client& c, RateGuard& guard, uint64_t key, uint64_t now, ClusterMode mode) {
  if (guard.shared && mode == ClusterMode::kDeny) return {.unavailable = true};
  if (guard.shared && mode == ClusterMode::kShared) {
    if (waits(c) >= kMaxLeaseWaits) {
      return {.refused = refused_for(guard.shared->policy().interval_us)};
    }
    cluster::LeaseTable& table = guard.shared->table(c.worker.cluster_port()->index());
    const cluster::LeaseTable::Decision d = table.take(key, now);
    if (d.verdict == cluster::LeaseTable::Verdict::kAllow) return {};
    if (d.verdict == cluster::LeaseTable::Verdict::kRefuse) {
      return {.refused = refused_for(d.retry_after_us)};
    }
    // kFull (every key of the worker's table in use), or an ask the full ring could not carry:
    // the local limiter stands in.
    if (d.verdict == cluster::LeaseTable::Verdict::kAsk) table.abandon(key);
  }
  protect::RateDecision decision = guard.limiter.take(key, std::chrono::steady_clock::now());
  if (decision.allowed) return {};
  return {.refused = decision};
}

size_t write_unavailable(LocalResponse response, net::Buffer& out) {
  response.status = 503;
  response.content_type = "text/plain; charset=utf-8";
  response.body = "503 Service Unavailable: the cluster's rate limit cannot be checked\n";
  response.fields = "Retry-After: 1\r\n";
  return write_local_response(response, out.data(), out.capacity());
}

}  // namespace

GuardRefusal check_guards(Client& c, const http1::RequestHead& head, const RequestInfo& info,
                          const RouteTarget* target, LocalResponse base, net::Buffer& out) {
  metrics::Shard& metrics = c.worker.metrics();
  RateGuard* listener_rate = c.routes->guard.rate.get();
  RateGuard* route_rate = target && target->guard ? target->guard->rate.get() : nullptr;
  auto key_of = [&](const RateGuard* guard) {
    return guard ? request_key_hash(head, guard->limit.key, info.client_ip.view()) : 0;
  };
  const uint64_t listener_key = key_of(listener_rate);
  const uint64_t route_key = key_of(route_rate);
  // Read once for both limits, and only for cluster-scoped ones (local limits read their own).
  const bool shared =
      (listener_rate && listener_rate->shared) || (route_rate && route_rate->shared);
  const uint64_t now = shared ? now_us() : 0;
  const ClusterMode mode = shared ? cluster_mode(c) : ClusterMode::kLocal;
  // Cluster-scoped limits first learn what Redis says, before any limit spends anything: the
  // request is prepared again once the answer is in (read_request_head).
  if ((listener_rate && !lease_ready(c, *listener_rate, listener_key, now, mode)) ||
      (route_rate && !lease_ready(c, *route_rate, route_key, now, mode))) {
    return {.wait = true};
  }
  if (listener_rate) {
    const Taken taken = take(c, *listener_rate, listener_key, now, mode);
    if (taken.unavailable || taken.refused) {
      metrics.listeners[c.routes->metric_id].rate_limited.add();
      c.current.guard = "rate_limit";
      if (taken.unavailable) return {503, write_unavailable(base, out)};
      return {429, write_rate_limited(*listener_rate, *taken.refused, "listener", base, out)};
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
  if (route_rate) {
    const Taken taken = take(c, *route_rate, route_key, now, mode);
    if (taken.unavailable || taken.refused) {
      metrics.routes[target->metric_id].rate_limited.add();
      c.current.guard = "rate_limit";
      if (taken.unavailable) return {503, write_unavailable(base, out)};
      return {429,
              write_rate_limited(*route_rate, *taken.refused, target->config->name, base, out)};
    }
  }
  return {};
}

namespace {

// A request's wait for Redis's answer, woken by its worker when the answer comes. It leaves the
// key's waiters when it ends, however it ends (a coroutine frame torn down while suspended
// included), so the table never holds a waiter that is gone.
class LeaseWait final : public cluster::LeaseWaiter {
 public:
  LeaseWait(net::Reactor& reactor, cluster::LeaseTable& table, uint64_t key)
      : signal(reactor), table_(table), key_(key) {
    table_.add_waiter(key_, *this);
  }
  LeaseWait(const LeaseWait&) = delete;
  LeaseWait& operator=(const LeaseWait&) = delete;
  ~LeaseWait() { table_.remove_waiter(key_, *this); }
  void wake() override { signal.notify(); }
  net::Signal signal;

 private:
  cluster::LeaseTable& table_;
  uint64_t key_;
};

}  // namespace

net::Task<void> wait_for_lease(Client& c) {
  // The cluster thread answers within its Redis timeout; past this, over all of its waits, the
  // request is refused for the key rather than held.
  constexpr Millis kMaxWait{1000};
  LeaseWaits& lease = *c.lease;
  std::shared_ptr<cluster::SharedLimit> limit = std::move(lease.limit);
  if (lease.count++ == 0) lease.deadline_ms = c.after(kMaxWait);
  cluster::WorkerPort* port = c.worker.cluster_port();
  if (!limit || !port) co_return;
  cluster::LeaseTable& table = limit->table(port->index());
  LeaseWait wait(c.worker.reactor(), table, lease.key);
  const long result = co_await wait.signal.wait(lease.deadline_ms);
  if (result == -ETIMEDOUT) {
    // No answer came (a full ring lost it): the key asks afresh.
    for (cluster::LeaseWaiter* other : table.abandon(lease.key)) {
      if (other != &wait) other->wake();
    }
    lease.count = kMaxLeaseWaits;
  }
}

}  // namespace usher::proxy::l7
