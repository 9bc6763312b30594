#pragma once
// What all workers share about one pool: its immutable backend snapshot, the picker built from it,
// and the live counters. Read lock-free from every worker; the counters are relaxed atomics.
#include <atomic>
#include <cstdint>

#include "balance/round_robin.h"
#include "balance/snapshot.h"
#include "config/config.h"

namespace usher::proxy {

struct PoolState {
  PoolState(const config::Pool& pool, uint32_t first_backend_id);

  const config::Pool& config;
  balance::BackendSnapshot snapshot;
  balance::RoundRobin picker;
  uint32_t first_backend_id;  // backends are numbered process-wide for per-worker tables
  alignas(64) std::atomic<uint64_t> round_robin_ticket{0};
};

inline balance::BackendSnapshot snapshot_of(const config::Pool& pool) {
  balance::BackendSnapshot snapshot;
  for (const config::Backend& b : pool.backends) snapshot.backends.push_back({b.address, b.weight});
  return snapshot;
}

inline PoolState::PoolState(const config::Pool& pool, uint32_t first_id)
    : config(pool),
      snapshot(snapshot_of(pool)),
      picker(balance::RoundRobin::build(snapshot)),
      first_backend_id(first_id) {}

}  // namespace usher::proxy
