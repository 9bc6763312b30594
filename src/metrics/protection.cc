// The protection families: refused connections, rate-limited and denied requests, the pools'
// queues and circuit breakers.
#include <algorithm>

#include "metrics/merge.h"
#include "metrics/registry.h"

namespace usher::metrics {

void Registry::write_protection(Exposition& e, const Layout& layout) const {
  const auto& s = shards_;
  e.family("usher_listener_refused_connections_total", "counter",
           "Connections closed at accept, unread: denied (allow/deny lists), max_connections "
           "(the listener's), per_client (max_connections_per_client), proxy_header (a trusted "
           "balancer's connection without a valid PROXY header, on http listeners).");
  for (const Layout::Named& l : layout.listeners) {
    for (size_t k = 0; k < kRefusalKinds; ++k) {
      e.sample("usher_listener_refused_connections_total",
               {{"listener", l.name}, {"reason", kRefusals[k]}},
               merged(s, [id = l.id, k](const Shard& x) -> const Counter& {
                 return x.listeners[id].refused[k];
               }));
    }
  }
  e.family("usher_listener_rate_limited_total", "counter",
           "Requests answered 429 by a listener's rate_limit.");
  for (const Layout::Named& l : layout.listeners) {
    e.sample("usher_listener_rate_limited_total", {{"listener", l.name}},
             merged(s, [id = l.id](const Shard& x) -> const Counter& {
               return x.listeners[id].rate_limited;
             }));
  }
  auto per_route = [&](std::string_view name, std::string_view help, Counter RouteCounters::*f) {
    e.family(name, "counter", help);
    for (const Layout::Route& r : layout.routes) {
      e.sample(
          name, {{"listener", r.listener}, {"route", r.name}},
          merged(s, [id = r.id, f](const Shard& x) -> const Counter& { return x.routes[id].*f; }));
    }
  };
  per_route("usher_route_rate_limited_total", "Requests answered 429 by a route's rate_limit.",
            &RouteCounters::rate_limited);
  per_route("usher_route_denied_total", "Requests answered 403 by a route's allow/deny lists.",
            &RouteCounters::denied);

  e.family("usher_circuit_breaker_trips_total", "counter",
           "Requests refused by a pool's breakers: queue_full (503 at once), retries (a retry "
           "not made: max_pending_retries in flight).");
  for (const Layout::Named& p : layout.pools) {
    for (size_t k = 0; k < kBreakerTripKinds; ++k) {
      e.sample("usher_circuit_breaker_trips_total", {{"pool", p.name}, {"kind", kBreakerTrips[k]}},
               merged(s, [id = p.id, k](const Shard& x) -> const Counter& {
                 return x.pools[id].breaker_trips[k];
               }));
    }
  }
  e.family("usher_pool_queue_timeouts_total", "counter",
           "Requests answered 503 after waiting queue.timeout for a backend with room.");
  for (const Layout::Named& p : layout.pools) {
    e.sample("usher_pool_queue_timeouts_total", {{"pool", p.name}},
             merged(s, [id = p.id](const Shard& x) -> const Counter& {
               return x.pools[id].queue_timeouts;
             }));
  }
  e.family("usher_pool_queue_depth", "gauge",
           "Requests waiting now for a backend below max_connections.");
  for (const Layout::Named& p : layout.pools) {
    int64_t depth = 0;
    for (const auto& shard : s) depth += shard->pools[p.id].queue_depth.read();
    e.sample("usher_pool_queue_depth", {{"pool", p.name}},
             static_cast<uint64_t>(std::max<int64_t>(depth, 0)));
  }
  e.family("usher_pool_queue_wait_seconds", "histogram",
           "Time requests waited in a pool's queue, whether a backend took them or not.");
  for (const Layout::Named& p : layout.pools) {
    write_histogram(
        e, "usher_pool_queue_wait_seconds", {{"pool", p.name}}, s,
        [id = p.id](const Shard& x) -> const Histogram& { return x.pools[id].queue_wait; });
  }
}

}  // namespace usher::metrics
