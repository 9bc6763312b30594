#include "proxy/pool_state.h"

namespace usher::proxy {

namespace {

balance::BackendSnapshot snapshot_of(const config::Pool& pool) {
  balance::BackendSnapshot snapshot;
  for (const config::Backend& b : pool.backends) snapshot.backends.push_back({b.address, b.weight});
  return snapshot;
}

balance::Options options_of(const config::Pool& pool) {
  balance::Options options;
  options.hash_balance_factor = pool.hash_balance_factor;
  options.slow_start_ms = static_cast<uint64_t>(pool.slow_start.count());
  return options;
}

}  // namespace

// The configuration was validated, so the algorithm exists and the pool has backends.
PoolState::PoolState(const config::Pool& pool, uint32_t first_id)
    : config(pool),
      snapshot(snapshot_of(pool)),
      options(options_of(pool)),
      picker(std::move(*balance::build(pool.balance, snapshot, options))),
      key_source(balance::find_algorithm(pool.balance)->key),
      first_backend_id(first_id),
      live(static_cast<uint32_t>(snapshot.backends.size())),
      retry_budget(pool.retries.budget_percent / 100, pool.retries.budget_floor_per_second) {}

}  // namespace usher::proxy
