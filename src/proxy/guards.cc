#include "proxy/guards.h"

#include <string_view>

#include "balance/picker.h"
#include "metrics/counters.h"

namespace usher::proxy {

namespace {

bool same_limit(const config::RateLimit& a, const config::RateLimit& b) {
  return a.key.kind == b.key.kind && a.key.name == b.key.name && a.per_second == b.per_second &&
         a.burst == b.burst && a.scope == b.scope;
}

// The previous guard's limiter when it enforced the same limit, else a new one. `redis_key`:
// where a cluster-scoped limit keeps its keys, the same in every instance with this
// configuration.
std::shared_ptr<RateGuard> rate_guard(const std::optional<config::RateLimit>& limit,
                                      const std::shared_ptr<RateGuard>* before,
                                      const std::string& redis_key) {
  if (!limit) return nullptr;
  if (before && *before && same_limit((*before)->limit, *limit) &&
      (!(*before)->shared || (*before)->redis_key == redis_key)) {
    return *before;
  }
  return std::make_shared<RateGuard>(*limit, redis_key);
}

std::string redis_key_base(const config::Config& config, const config::Listener& listener,
                           std::string_view route) {
  const std::string name = listener.name.empty() ? listener.listen.to_string() : listener.name;
  return config.cluster.key_prefix + "rl:" + name + "/" + std::string(route) + ":";
}

// A udp listener's sessions take the places a tcp listener's connections would (max_sessions).
std::shared_ptr<ConnectionLimits> connection_limits(const config::Listener& listener,
                                                    const ListenerGuard* before) {
  const bool udp = listener.protocol == config::Protocol::kUdp;
  const uint32_t max = udp ? listener.max_sessions : listener.max_connections;
  const uint32_t max_per_client = udp ? 0 : listener.max_connections_per_client;
  if (!max && !max_per_client) return nullptr;
  if (before && before->connections && before->connections->max == max &&
      before->connections->max_per_client == max_per_client) {
    return before->connections;
  }
  return std::make_shared<ConnectionLimits>(max, max_per_client);
}

// A listener is the same one across generations by its name, or by its address when unnamed.
int find_listener(const config::Config* config, const config::Listener& listener) {
  if (!config) return -1;
  for (size_t i = 0; i < config->listeners.size(); ++i) {
    const config::Listener& l = config->listeners[i];
    if (listener.name.empty() ? l.name.empty() && l.listen == listener.listen
                              : l.name == listener.name) {
      return static_cast<int>(i);
    }
  }
  return -1;
}

RouteGuard route_guard(const config::Route& route, const config::Listener* previous_listener,
                       const std::vector<RouteGuard>* previous_routes,
                       const std::string& redis_key) {
  RouteGuard guard;
  guard.ip = protect::IpFilter(route.ip.allow, route.ip.deny);
  const std::shared_ptr<RateGuard>* before = nullptr;
  if (previous_listener) {
    for (size_t r = 0; r < previous_listener->routes.size(); ++r) {
      if (previous_listener->routes[r].name == route.name) before = &(*previous_routes)[r].rate;
    }
  }
  guard.rate = rate_guard(route.rate_limit, before, redis_key);
  return guard;
}

}  // namespace

RateGuard::RateGuard(const config::RateLimit& l, std::string key)
    : limit(l), limiter(protect::RateLimitPolicy{l.per_second, l.burst}) {
  if (l.scope != config::RateLimit::Scope::kCluster) return;
  redis_key = std::move(key);
  shared = std::make_shared<cluster::SharedLimit>(redis_key, l.per_second, l.burst);
}

ConnectionLimits::ConnectionLimits(uint32_t max_open, uint32_t max_open_per_client)
    : max(max_open), max_per_client(max_open_per_client) {
  if (max_per_client) per_client = std::make_unique<protect::ConnectionCounts>(max_per_client);
}

Guards build_guards(const config::Config& config, const Guards* previous,
                    const config::Config* previous_config) {
  Guards guards;
  for (const config::Listener& listener : config.listeners) {
    const int before = previous ? find_listener(previous_config, listener) : -1;
    const ListenerGuard* old = before >= 0 ? &previous->listeners[before] : nullptr;
    ListenerGuard& guard = guards.listeners.emplace_back();
    guard.ip = protect::IpFilter(listener.ip.allow, listener.ip.deny);
    guard.connections = connection_limits(listener, old);
    guard.rate = rate_guard(listener.rate_limit, old ? &old->rate : nullptr,
                            redis_key_base(config, listener, "*"));
    std::vector<RouteGuard>& routes = guards.routes.emplace_back();
    for (size_t r = 0; r < listener.routes.size(); ++r) {
      const config::Route& route = listener.routes[r];
      const std::string route_name = route.name.empty() ? "#" + std::to_string(r) : route.name;
      routes.push_back(route_guard(route,
                                   before >= 0 ? &previous_config->listeners[before] : nullptr,
                                   before >= 0 ? &previous->routes[before] : nullptr,
                                   redis_key_base(config, listener, route_name)));
    }
  }
  return guards;
}

uint64_t client_hash(const IpBytes& ip) {
  return balance::hash_key(
      std::string_view(reinterpret_cast<const char*>(ip.bytes.data()), ip.bytes.size()));
}

std::optional<uint8_t> Admission::admit(const ListenerGuard& guard, const IpBytes& peer,
                                        Admission& out) {
  using metrics::Refusal;
  if (!guard.ip.empty() && !guard.ip.admits(peer)) return static_cast<uint8_t>(Refusal::kDenied);
  ConnectionLimits* limits = guard.connections.get();
  if (!limits) return std::nullopt;
  if (limits->max) {
    uint32_t open = limits->open.load(std::memory_order_relaxed);
    do {
      if (open >= limits->max) return static_cast<uint8_t>(Refusal::kMaxConnections);
    } while (!limits->open.compare_exchange_weak(open, open + 1, std::memory_order_relaxed));
  }
  out.limits_ = guard.connections;
  if (limits->per_client) {
    out.ticket_ = limits->per_client->acquire(client_hash(peer));
    if (!out.ticket_) {
      out.release();
      return static_cast<uint8_t>(Refusal::kPerClient);
    }
  }
  return std::nullopt;
}

Admission::Admission(Admission&& other) noexcept
    : limits_(std::move(other.limits_)), ticket_(std::exchange(other.ticket_, std::nullopt)) {}

Admission& Admission::operator=(Admission&& other) noexcept {
  if (this != &other) {
    release();
    limits_ = std::move(other.limits_);
    ticket_ = std::exchange(other.ticket_, std::nullopt);
  }
  return *this;
}

Admission::~Admission() {
  release();
}

void Admission::release() {
  if (!limits_) return;
  if (ticket_) limits_->per_client->release(*ticket_);
  ticket_.reset();
  if (limits_->max) limits_->open.fetch_sub(1, std::memory_order_relaxed);
  limits_.reset();
}

}  // namespace usher::proxy
