#pragma once
// What all workers share about one pool: its immutable backend snapshot, the picker built from
// it, and the live counters. Read lock-free from every worker; counters are relaxed atomics.
#include <atomic>
#include <cstdint>
#include <memory>

#include "balance/live.h"
#include "balance/picker.h"
#include "balance/snapshot.h"
#include "config/config.h"
#include "proxy/retry_budget.h"

namespace usher::proxy {

struct PoolState {
  PoolState(const config::Pool& pool, uint32_t first_backend_id);

  const config::Pool& config;
  balance::BackendSnapshot snapshot;
  balance::Options options;
  std::unique_ptr<balance::Picker> picker;
  balance::KeySource key_source;
  uint32_t first_backend_id;  // backends are numbered process-wide for per-worker tables
  balance::LiveState live;
  RetryBudget retry_budget;
  alignas(64) std::atomic<uint64_t> ticket{0};
};

}  // namespace usher::proxy
