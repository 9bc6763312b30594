#include "metrics/registry.h"

#include <fmt/format.h>

#include <algorithm>

#include "metrics/prometheus.h"

namespace usher::metrics {

namespace {

std::string listener_label(const config::Listener& l) {
  return l.name.empty() ? l.listen.to_string() : l.name;
}

// Sums one counter over all shards.
template <typename Get>
uint64_t merged(const std::vector<std::unique_ptr<Shard>>& shards, Get get) {
  uint64_t total = 0;
  for (const auto& shard : shards) total += get(*shard).read();
  return total;
}

template <typename Get>
void write_histogram(Exposition& e, std::string_view name, Labels labels,
                     const std::vector<std::unique_ptr<Shard>>& shards, Get get) {
  uint64_t cumulative = 0;
  uint64_t sum_micros = 0;
  const std::string bucket = std::string(name) + "_bucket";
  for (size_t i = 0; i < kBuckets; ++i) {
    for (const auto& shard : shards) cumulative += get(*shard).bucket(i);
    std::string le = i + 1 < kBuckets ? fmt::format("{}", kBucketBounds[i]) : "+Inf";
    e.sample(bucket, labels, {"le", le}, cumulative);
  }
  for (const auto& shard : shards) sum_micros += get(*shard).sum_micros();
  e.sample(std::string(name) + "_sum", labels, static_cast<double>(sum_micros) / 1e6);
  e.sample(std::string(name) + "_count", labels, cumulative);
}

}  // namespace

Shard::Shard(size_t listener_count, size_t route_count, size_t pool_count, size_t backend_count)
    : listeners(std::make_unique<ListenerCounters[]>(listener_count)),
      routes(std::make_unique<RouteCounters[]>(route_count)),
      pools(std::make_unique<PoolCounters[]>(pool_count)),
      backends(std::make_unique<BackendCounters[]>(backend_count)) {}

Registry::Registry(const config::Config& config, unsigned workers, size_t backend_slots)
    : config_(config), backends_(backend_slots) {
  for (const config::Listener& l : config.listeners) {
    first_route_.push_back(routes_);
    routes_ += l.routes.size();
  }
  for (unsigned i = 0; i < workers; ++i) {
    shards_.push_back(
        std::make_unique<Shard>(config.listeners.size(), routes_, config.pools.size(), backends_));
  }
}

Registry::BackendTotals Registry::backend_totals(size_t backend) const {
  BackendTotals t;
  for (const auto& shard : shards_) {
    const BackendCounters& b = shard->backends[backend];
    for (size_t c = 0; c < 5; ++c) t.responses[c] += b.responses[c].read();
    for (const Counter& e : b.errors) t.errors += e.read();
    for (size_t i = 0; i < kBuckets; ++i) t.buckets[i] += b.total.bucket(i);
  }
  return t;
}

void Registry::write_prometheus(std::string& out, const std::vector<BackendLabel>& backends) const {
  Exposition e(out);
  const auto& s = shards_;
  const auto& listeners = config_.listeners;
  const auto& pools = config_.pools;
  // Families of one counter per listener, pool or backend, named by a member of its counters.
  auto per_listener = [&](std::string_view name, std::string_view help,
                          Counter ListenerCounters::*field) {
    e.family(name, "counter", help);
    for (size_t i = 0; i < listeners.size(); ++i) {
      e.sample(name, {{"listener", listener_label(listeners[i])}},
               merged(s, [i, field](const Shard& x) -> const Counter& {
                 return x.listeners[i].*field;
               }));
    }
  };
  auto per_pool = [&](std::string_view name, std::string_view help, Counter PoolCounters::*field) {
    e.family(name, "counter", help);
    for (size_t p = 0; p < pools.size(); ++p) {
      e.sample(
          name, {{"pool", pools[p].name}},
          merged(s, [p, field](const Shard& x) -> const Counter& { return x.pools[p].*field; }));
    }
  };
  auto per_backend = [&](std::string_view name, std::string_view help,
                         Counter BackendCounters::*field) {
    e.family(name, "counter", help);
    for (const BackendLabel& b : backends) {
      e.sample(name, {{"pool", b.pool}, {"backend", b.name}},
               merged(s, [id = b.id, field](const Shard& x) -> const Counter& {
                 return x.backends[id].*field;
               }));
    }
  };

  per_listener("usher_listener_connections_total", "Client connections accepted.",
               &ListenerCounters::connections);
  e.family("usher_listener_open_connections", "gauge", "Client connections open now.");
  for (size_t i = 0; i < listeners.size(); ++i) {
    int64_t open = 0;
    for (const auto& shard : s) open += shard->listeners[i].open_connections.read();
    e.sample("usher_listener_open_connections", {{"listener", listener_label(listeners[i])}},
             static_cast<uint64_t>(std::max<int64_t>(open, 0)));
  }
  e.family("usher_listener_responses_total", "counter",
           "Responses to clients by status class, errors before routing included.");
  for (size_t i = 0; i < listeners.size(); ++i) {
    for (size_t c = 0; c < 5; ++c) {
      e.sample("usher_listener_responses_total",
               {{"listener", listener_label(listeners[i])}, {"code", kStatusClasses[c]}},
               merged(s, [i, c](const Shard& x) -> const Counter& {
                 return x.listeners[i].responses[c];
               }));
    }
  }
  per_listener("usher_listener_received_bytes_total", "Bytes received from clients.",
               &ListenerCounters::bytes_received);
  per_listener("usher_listener_sent_bytes_total", "Bytes sent to clients.",
               &ListenerCounters::bytes_sent);

  e.family("usher_route_responses_total", "counter",
           "Responses to clients by route and status class, usher's own included.");
  for (size_t l = 0; l < listeners.size(); ++l) {
    for (size_t r = 0; r < listeners[l].routes.size(); ++r) {
      const size_t id = first_route_[l] + r;
      for (size_t c = 0; c < 5; ++c) {
        e.sample("usher_route_responses_total",
                 {{"listener", listener_label(listeners[l])},
                  {"route", listeners[l].routes[r].name},
                  {"code", kStatusClasses[c]}},
                 merged(s, [id, c](const Shard& x) -> const Counter& {
                   return x.routes[id].responses[c];
                 }));
      }
    }
  }
  e.family("usher_route_request_duration_seconds", "histogram",
           "From a request head received to its response sent.");
  for (size_t l = 0; l < listeners.size(); ++l) {
    for (size_t r = 0; r < listeners[l].routes.size(); ++r) {
      const size_t id = first_route_[l] + r;
      write_histogram(
          e, "usher_route_request_duration_seconds",
          {{"listener", listener_label(listeners[l])}, {"route", listeners[l].routes[r].name}}, s,
          [id](const Shard& x) -> const Histogram& { return x.routes[id].duration; });
    }
  }

  e.family("usher_worker_heap_allocations_total", "counter",
           "Heap allocations made on each worker thread (zero per request in steady state).");
  for (size_t w = 0; w < s.size(); ++w) {
    e.sample("usher_worker_heap_allocations_total", {{"worker", std::to_string(w)}},
             s[w]->heap_allocations.load(std::memory_order_relaxed));
  }

  per_pool("usher_pool_retries_total", "Retries on another backend.", &PoolCounters::retries);
  per_pool("usher_pool_no_backend_total", "Requests answered 503 because no backend was usable.",
           &PoolCounters::no_backend);

  auto each_backend = [&](auto&& write) {
    for (const BackendLabel& b : backends) write(b.id, b.pool, b.name);
  };
  e.family("usher_backend_requests_total", "counter", "Responses from backends by status class.");
  each_backend([&](size_t id, const std::string& pool, const std::string& backend) {
    for (size_t c = 0; c < 5; ++c) {
      e.sample("usher_backend_requests_total",
               {{"pool", pool}, {"backend", backend}, {"code", kStatusClasses[c]}},
               merged(s, [id, c](const Shard& x) -> const Counter& {
                 return x.backends[id].responses[c];
               }));
    }
  });
  e.family("usher_backend_errors_total", "counter", "Tries that got no usable response, by kind.");
  each_backend([&](size_t id, const std::string& pool, const std::string& backend) {
    for (size_t k = 0; k < kUpstreamErrorKinds; ++k) {
      e.sample("usher_backend_errors_total",
               {{"pool", pool}, {"backend", backend}, {"kind", kUpstreamErrors[k]}},
               merged(s, [id, k](const Shard& x) -> const Counter& {
                 return x.backends[id].errors[k];
               }));
    }
  });
  per_backend("usher_backend_sent_bytes_total", "Request bytes sent to backends.",
              &BackendCounters::bytes_sent);
  per_backend("usher_backend_received_bytes_total", "Response bytes received from backends.",
              &BackendCounters::bytes_received);
  e.family("usher_backend_first_byte_seconds", "histogram",
           "From sending a request to a backend to its response head.");
  each_backend([&](size_t id, const std::string& pool, const std::string& backend) {
    write_histogram(e, "usher_backend_first_byte_seconds", {{"pool", pool}, {"backend", backend}},
                    s,
                    [id](const Shard& x) -> const Histogram& { return x.backends[id].first_byte; });
  });
  e.family("usher_backend_response_seconds", "histogram",
           "From sending a request to a backend to the end of its response.");
  each_backend([&](size_t id, const std::string& pool, const std::string& backend) {
    write_histogram(e, "usher_backend_response_seconds", {{"pool", pool}, {"backend", backend}}, s,
                    [id](const Shard& x) -> const Histogram& { return x.backends[id].total; });
  });
}

}  // namespace usher::metrics
