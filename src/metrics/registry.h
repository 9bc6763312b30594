#pragma once
// Every counter of the process: one shard per worker, merged when read. Counters are numbered
// by name (listener, route, pool, backend address), the same number for the same name for the
// whole run, so that a counter keeps counting across configuration reloads and a name that
// returns finds its old count.
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "metrics/counters.h"
#include "metrics/stable_array.h"

namespace usher::metrics {

class Exposition;

// One worker's counters. Worker thread writes; any thread reads.
struct Shard {
  StableArray<ListenerCounters> listeners;
  StableArray<RouteCounters> routes;
  StableArray<PoolCounters> pools;
  StableArray<BackendCounters> backends;
  std::atomic<uint64_t> heap_allocations{0};          // operator new calls on the worker's thread
  std::atomic<uint64_t> receive_buffer_shortages{0};  // io_uring receives that found no buffer
};

class Registry {
 public:
  explicit Registry(unsigned workers);

  Shard& shard(unsigned worker) { return *shards_[worker]; }

  // Control or admin thread: the numbers of named things, allocated on first use. The counters
  // behind a new number exist before it is returned.
  uint32_t listener_id(std::string_view listener);
  uint32_t route_id(std::string_view listener, std::string_view route);
  uint32_t pool_id(std::string_view pool);
  uint32_t backend_id(std::string_view pool, std::string_view address);

  // One backend's counters merged over all workers (any thread).
  struct BackendTotals {
    uint64_t responses[5] = {};
    uint64_t errors = 0;
    uint64_t buckets[kBuckets] = {};  // response_seconds, per bucket (not cumulative)
  };
  BackendTotals backend_totals(size_t backend) const;

  // What to expose: the current configuration decides which numbers exist and their labels.
  struct Layout {
    struct Named {
      size_t id;
      std::string name;
    };
    struct Route {
      size_t id;
      std::string listener;
      std::string name;
    };
    struct Backend {
      size_t id;
      std::string pool;
      std::string name;
      std::string zone;  // empty: none, and no zone label
    };
    std::vector<Named> listeners;
    std::vector<Named> tcp_listeners, udp_listeners;  // also in `listeners`
    std::vector<Route> routes;
    std::vector<Named> pools;
    std::vector<Backend> backends;
  };

  // Appends the counter and histogram families in Prometheus text format (version 0.0.4).
  void write_prometheus(std::string& out, const Layout& layout) const;

 private:
  void write_listeners(Exposition& e, const std::vector<Layout::Named>& listeners) const;
  void write_protection(Exposition& e, const Layout& layout) const;  // protection.cc
  void write_l4(Exposition& e, const Layout& layout) const;          // l4.cc
  void write_http2(Exposition& e, const Layout& layout) const;       // http2.cc
  uint32_t number(std::map<std::string, uint32_t, std::less<>>& kind, std::string key,
                  void (*reserve)(Shard&, size_t));

  std::vector<std::unique_ptr<Shard>> shards_;
  std::mutex mutex_;
  std::map<std::string, uint32_t, std::less<>> listeners_, routes_, pools_, backends_;
};

}  // namespace usher::metrics
