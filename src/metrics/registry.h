#pragma once
// Every counter of the process: one shard per worker, laid out by the configuration's numbering
// (backends process-wide in pool order, routes in listener order), merged when read.
#include <memory>
#include <string>
#include <vector>

#include "config/config.h"
#include "metrics/counters.h"

namespace usher::metrics {

// One worker's counters. Worker thread writes; any thread reads.
struct Shard {
  Shard(size_t listeners, size_t routes, size_t pools, size_t backends);

  std::unique_ptr<ListenerCounters[]> listeners;
  std::unique_ptr<RouteCounters[]> routes;
  std::unique_ptr<PoolCounters[]> pools;
  std::unique_ptr<BackendCounters[]> backends;
  std::atomic<uint64_t> heap_allocations{0};  // operator new calls on the worker's thread
};

class Registry {
 public:
  // `backend_slots`: how many backend numbers exist (configured ones and room for those added at
  // run time); backends are numbered by the caller.
  Registry(const config::Config& config, unsigned workers, size_t backend_slots);

  Shard& shard(unsigned worker) { return *shards_[worker]; }
  // First process-wide route number of a listener's routes.
  size_t first_route(size_t listener) const { return first_route_[listener]; }

  // One backend's counters merged over all workers (any thread).
  struct BackendTotals {
    uint64_t responses[5] = {};
    uint64_t errors = 0;
    uint64_t buckets[kBuckets] = {};  // response_seconds, per bucket (not cumulative)
  };
  BackendTotals backend_totals(size_t backend) const;

  // A backend to expose, by its number: the pools decide which exist and what they are called.
  struct BackendLabel {
    size_t id;
    std::string pool;
    std::string name;
  };

  // Appends the counter and histogram families in Prometheus text format (version 0.0.4).
  void write_prometheus(std::string& out, const std::vector<BackendLabel>& backends) const;

 private:
  const config::Config& config_;
  std::vector<size_t> first_route_;
  size_t routes_ = 0;
  size_t backends_ = 0;
  std::vector<std::unique_ptr<Shard>> shards_;
};

}  // namespace usher::metrics
