#include "metrics/registry.h"

#include <fmt/format.h>

#include <algorithm>
#include <span>

#include "metrics/merge.h"
#include "metrics/prometheus.h"

namespace usher::metrics {

Registry::Registry(unsigned workers) {
  for (unsigned i = 0; i < workers; ++i) shards_.push_back(std::make_unique<Shard>());
}

uint32_t Registry::number(std::map<std::string, uint32_t, std::less<>>& kind, std::string key,
                          void (*reserve)(Shard&, size_t)) {
  std::lock_guard lock(mutex_);
  auto [it, added] = kind.try_emplace(std::move(key), static_cast<uint32_t>(kind.size()));
  if (added) {
    for (auto& shard : shards_) reserve(*shard, it->second + 1);
  }
  return it->second;
}

uint32_t Registry::listener_id(std::string_view listener) {
  return number(listeners_, std::string(listener),
                [](Shard& s, size_t n) { s.listeners.reserve(n); });
}

uint32_t Registry::route_id(std::string_view listener, std::string_view route) {
  return number(routes_, std::string(listener) + '\0' + std::string(route),
                [](Shard& s, size_t n) { s.routes.reserve(n); });
}

uint32_t Registry::pool_id(std::string_view pool) {
  return number(pools_, std::string(pool), [](Shard& s, size_t n) { s.pools.reserve(n); });
}

uint32_t Registry::backend_id(std::string_view pool, std::string_view address) {
  return number(backends_, std::string(pool) + '\0' + std::string(address),
                [](Shard& s, size_t n) { s.backends.reserve(n); });
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

void Registry::write_listeners(Exposition& e, const std::vector<Layout::Named>& listeners) const {
  const auto& s = shards_;
  auto per_listener = [&](std::string_view name, std::string_view help,
                          Counter ListenerCounters::*field) {
    e.family(name, "counter", help);
    for (const Layout::Named& l : listeners) {
      e.sample(name, {{"listener", l.name}},
               merged(s, [id = l.id, field](const Shard& x) -> const Counter& {
                 return x.listeners[id].*field;
               }));
    }
  };
  per_listener("usher_listener_connections_total", "Client connections accepted.",
               &ListenerCounters::connections);
  e.family("usher_listener_open_connections", "gauge", "Client connections open now.");
  for (const Layout::Named& l : listeners) {
    int64_t open = 0;
    for (const auto& shard : s) open += shard->listeners[l.id].open_connections.read();
    e.sample("usher_listener_open_connections", {{"listener", l.name}},
             static_cast<uint64_t>(std::max<int64_t>(open, 0)));
  }
  e.family("usher_listener_responses_total", "counter",
           "Responses to clients by status class, errors before routing included.");
  for (const Layout::Named& l : listeners) {
    for (size_t c = 0; c < 5; ++c) {
      e.sample("usher_listener_responses_total",
               {{"listener", l.name}, {"code", kStatusClasses[c]}},
               merged(s, [id = l.id, c](const Shard& x) -> const Counter& {
                 return x.listeners[id].responses[c];
               }));
    }
  }
  // Families of one counter per listener and reason, from a member array of its counters.
  auto per_listener_reason = [&](std::string_view name, std::string_view help,
                                 std::span<const char* const> reasons, auto member) {
    e.family(name, "counter", help);
    for (const Layout::Named& l : listeners) {
      for (size_t k = 0; k < reasons.size(); ++k) {
        e.sample(name, {{"listener", l.name}, {"reason", reasons[k]}},
                 merged(s, [id = l.id, k, member](const Shard& x) -> const Counter& {
                   return (x.listeners[id].*member)[k];
                 }));
      }
    }
  };
  per_listener_reason("usher_listener_accept_errors_total",
                      "Failed accepts by reason: fd_limit (out of descriptors), memory, other.",
                      kAcceptErrors, &ListenerCounters::accept_errors);
  per_listener("usher_tls_handshakes_total", "TLS handshakes completed by clients.",
               &ListenerCounters::tls_handshakes);
  per_listener_reason("usher_tls_handshake_failures_total",
                      "TLS handshakes that failed or timed out, by reason.", kTlsFailures,
                      &ListenerCounters::tls_failures);
  per_listener("usher_listener_received_bytes_total", "Bytes received from clients.",
               &ListenerCounters::bytes_received);
  per_listener("usher_listener_sent_bytes_total", "Bytes sent to clients.",
               &ListenerCounters::bytes_sent);
}

void Registry::write_prometheus(std::string& out, const Layout& layout) const {
  Exposition e(out);
  const auto& s = shards_;
  const auto& pools = layout.pools;
  const auto& backends = layout.backends;
  // Families of one counter per pool or backend, named by a member of its counters.
  auto per_pool = [&](std::string_view name, std::string_view help, Counter PoolCounters::*field) {
    e.family(name, "counter", help);
    for (const Layout::Named& p : pools) {
      e.sample(name, {{"pool", p.name}},
               merged(s, [id = p.id, field](const Shard& x) -> const Counter& {
                 return x.pools[id].*field;
               }));
    }
  };
  auto per_backend = [&](std::string_view name, std::string_view help,
                         Counter BackendCounters::*field) {
    e.family(name, "counter", help);
    for (const Layout::Backend& b : backends) {
      e.sample(name, {{"pool", b.pool}, {"backend", b.name}},
               merged(s, [id = b.id, field](const Shard& x) -> const Counter& {
                 return x.backends[id].*field;
               }));
    }
  };

  write_listeners(e, layout.listeners);
  write_protection(e, layout);
  write_http2(e, layout);
  write_l4(e, layout);

  e.family("usher_route_responses_total", "counter",
           "Responses to clients by route and status class, usher's own included.");
  for (const Layout::Route& r : layout.routes) {
    for (size_t c = 0; c < 5; ++c) {
      e.sample("usher_route_responses_total",
               {{"listener", r.listener}, {"route", r.name}, {"code", kStatusClasses[c]}},
               merged(s, [id = r.id, c](const Shard& x) -> const Counter& {
                 return x.routes[id].responses[c];
               }));
    }
  }
  e.family("usher_route_request_duration_seconds", "histogram",
           "From a request head received to its response sent.");
  for (const Layout::Route& r : layout.routes) {
    write_histogram(
        e, "usher_route_request_duration_seconds", {{"listener", r.listener}, {"route", r.name}}, s,
        [id = r.id](const Shard& x) -> const Histogram& { return x.routes[id].duration; });
  }

  e.family("usher_worker_heap_allocations_total", "counter",
           "Heap allocations made on each worker thread (zero per request in steady state).");
  for (size_t w = 0; w < s.size(); ++w) {
    e.sample("usher_worker_heap_allocations_total", {{"worker", std::to_string(w)}},
             s[w]->heap_allocations.load(std::memory_order_relaxed));
  }
  e.family("usher_worker_receive_buffer_shortages_total", "counter",
           "io_uring receives that found the worker's receive-buffer ring empty.");
  for (size_t w = 0; w < s.size(); ++w) {
    e.sample("usher_worker_receive_buffer_shortages_total", {{"worker", std::to_string(w)}},
             s[w]->receive_buffer_shortages.load(std::memory_order_relaxed));
  }

  per_pool("usher_pool_retries_total", "Retries on another backend.", &PoolCounters::retries);
  per_pool("usher_pool_no_backend_total", "Requests answered 503 because no backend was usable.",
           &PoolCounters::no_backend);

  auto each_backend = [&](auto&& write) {
    for (const Layout::Backend& b : backends) write(b.id, b.pool, b.name);
  };
  e.family("usher_backend_requests_total", "counter",
           "Responses from backends by status class (zone: the backend's, when it names one).");
  for (const Layout::Backend& b : backends) {
    for (size_t c = 0; c < 5; ++c) {
      const uint64_t count = merged(s, [id = b.id, c](const Shard& x) -> const Counter& {
        return x.backends[id].responses[c];
      });
      if (b.zone.empty()) {
        e.sample("usher_backend_requests_total",
                 {{"pool", b.pool}, {"backend", b.name}, {"code", kStatusClasses[c]}}, count);
      } else {
        e.sample(
            "usher_backend_requests_total",
            {{"pool", b.pool}, {"backend", b.name}, {"zone", b.zone}, {"code", kStatusClasses[c]}},
            count);
      }
    }
  }
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
