#pragma once
// The protection a generation applies, built from its configuration and shared by every worker:
// per listener the allow/deny lists, the connection limits and a rate limit; per route the
// allow/deny lists and a rate limit. What keeps state (connection counts, rate-limit
// timestamps) carries over to the next generation while its settings stay the same, so a reload
// neither forgets a client's rate nor lets every open connection count anew.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/ip_range.h"
#include "cluster/shared_limit.h"
#include "config/config.h"
#include "protect/connection_counts.h"
#include "protect/ip_filter.h"
#include "protect/rate_limiter.h"

namespace usher::proxy {

// A rate limit in force: the limiter (its table of timestamps) and what configured it. A
// cluster-scoped limit also has its share of the cluster's limit; the local limiter then stands
// in while Redis is unreachable (cluster.on_redis_failure: local).
struct RateGuard {
  RateGuard(const config::RateLimit& limit, std::string redis_key);
  config::RateLimit limit;
  protect::RateLimiter limiter;
  std::string redis_key;                         // cluster scope: the keys' prefix in Redis
  std::shared_ptr<cluster::SharedLimit> shared;  // null: local scope
};

// A listener's open connections (a udp listener's sessions), in all and per client address.
struct ConnectionLimits {
  ConnectionLimits(uint32_t max, uint32_t max_per_client);
  uint32_t max;             // 0: no limit
  uint32_t max_per_client;  // 0: no limit
  std::atomic<uint32_t> open{0};
  std::unique_ptr<protect::ConnectionCounts> per_client;
};

struct ListenerGuard {
  protect::IpFilter ip;
  std::shared_ptr<ConnectionLimits> connections;  // null: no limit
  std::shared_ptr<RateGuard> rate;                // null: none
};

struct RouteGuard {
  protect::IpFilter ip;
  std::shared_ptr<RateGuard> rate;  // null: none
  bool empty() const { return ip.empty() && !rate; }
};

struct Guards {
  std::vector<ListenerGuard> listeners;         // by listener
  std::vector<std::vector<RouteGuard>> routes;  // by listener, by route
};

// `previous`: the guards of the generation before and its configuration, whose state carries
// over where a listener (by name or address) or route (by name) keeps its settings.
Guards build_guards(const config::Config& config, const Guards* previous,
                    const config::Config* previous_config);

// A connection's place in its listener's limits, given back when it closes.
class Admission {
 public:
  Admission() = default;
  Admission(Admission&& other) noexcept;
  Admission& operator=(Admission&& other) noexcept;
  Admission(const Admission&) = delete;
  Admission& operator=(const Admission&) = delete;
  ~Admission();

  // Worker thread, before any byte is read: the refusal reason (metrics::Refusal), or nullopt
  // and the connection counted.
  static std::optional<uint8_t> admit(const ListenerGuard& guard, const IpBytes& peer,
                                      Admission& out);

 private:
  void release();
  std::shared_ptr<ConnectionLimits> limits_;
  std::optional<protect::ConnectionCounts::Ticket> ticket_;
};

// The hash a ConnectionCounts table and an ip-keyed rate limit know a client address by.
uint64_t client_hash(const IpBytes& ip);

}  // namespace usher::proxy
