#pragma once
// A generation: one loaded configuration and everything built from it (pool states with their
// pickers, metric numbers). Immutable once published and shared by every worker through a
// std::shared_ptr; a reload builds the next one beside it. A request holds the generation it
// started on to its end, so a reload never changes a request half-way; the last holder frees it.
//
// Each worker keeps its own view of a generation (WorkerGeneration: its compiled route tables)
// with a plain counter of the requests holding it, so taking a generation per request touches
// no memory shared with other workers.
#include <cstdint>
#include <memory>
#include <vector>

#include "config/config.h"
#include "geo/database.h"
#include "metrics/registry.h"
#include "proxy/guards.h"
#include "proxy/listener_routes.h"
#include "proxy/pool_state.h"
#include "tls/context.h"

namespace usher::proxy {

struct Generation {
  uint64_t number = 0;
  config::Config config;  // what everything below points into
  std::vector<std::unique_ptr<PoolState>> pools;
  std::vector<uint32_t> listener_ids;            // metric numbers, by listener
  std::vector<std::vector<uint32_t>> route_ids;  // by listener, by route
  std::vector<std::string> listener_labels;      // name, or the address when unnamed
  Guards guards;                                 // protection, by listener and route
  // The configuration's geoip database (null without one). A reload opens it again, and a
  // change of the file on disk builds a generation with a new one (src/app/discovery.cc).
  std::shared_ptr<const geo::Database> geoip;

  // The numbers and labels of what this generation's metrics expose (admin thread).
  metrics::Registry::Layout metrics_layout() const;
};

// Builds generation `number` from a validated configuration and the geoip database opened for it
// (null when it has none). Backends that `previous` also has (same pool name, same address) keep
// their health, ejection, drain and latency state.
std::shared_ptr<const Generation> build_generation(config::Config config, uint64_t number,
                                                   metrics::Registry& registry,
                                                   const Generation* previous,
                                                   std::shared_ptr<const geo::Database> geoip);

// After `next` is live: backends of `previous` that `next` no longer has leave `previous`'s
// pools too, so that its requests still in flight retry nowhere near them.
void retire_removed_backends(const Generation& previous, const Generation& next);

class Worker;

// One worker's view of a generation. Worker thread only, except construction.
struct WorkerGeneration {
  WorkerGeneration(std::shared_ptr<const Generation> generation, std::vector<int> listen_fds,
                   tls::WorkerContexts tls);
  WorkerGeneration(const WorkerGeneration&) = delete;
  WorkerGeneration& operator=(const WorkerGeneration&) = delete;
  ~WorkerGeneration();

  const config::Config& config() const { return shared->config; }
  // The backend TLS of one of this generation's pools (whose config is one of config().pools).
  const std::shared_ptr<const tls::ClientContext>& backend_tls(const PoolState& pool) const {
    return pool_tls[static_cast<size_t>(&pool.config - shared->config.pools.data())];
  }

  std::shared_ptr<const Generation> shared;
  std::vector<ListenerRoutes> listeners;  // by listener of the generation
  std::vector<int> listen_fds;  // by listener: a socket bound for this worker, or -1 (kept one)
  // Sockets taken over from a process with more workers: (listener, socket), each accepted on
  // beside listen_fds' so that no connection queued on it is dropped.
  std::vector<std::pair<size_t, int>> more_fds;
  tls::ListenerContexts tls;   // by listener: this worker's certificates, null for plain HTTP
  tls::PoolContexts pool_tls;  // by pool: this worker's backend TLS, null for plain backends
  uint32_t users = 0;          // requests holding it
};

// A request's hold on its worker's generation; the last hold on a replaced one frees it.
class GenerationRef {
 public:
  GenerationRef() = default;
  GenerationRef(Worker& worker, WorkerGeneration& generation);
  GenerationRef(GenerationRef&& other) noexcept
      : worker_(other.worker_), generation_(std::exchange(other.generation_, nullptr)) {}
  GenerationRef& operator=(GenerationRef&& other) noexcept;
  GenerationRef(const GenerationRef&) = delete;
  GenerationRef& operator=(const GenerationRef&) = delete;
  ~GenerationRef() { reset(); }

  void reset();
  WorkerGeneration& operator*() const { return *generation_; }
  WorkerGeneration* operator->() const { return generation_; }

 private:
  Worker* worker_ = nullptr;
  WorkerGeneration* generation_ = nullptr;
};

}  // namespace usher::proxy
