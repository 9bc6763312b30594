#include "proxy/pool_state.h"

#include <cstdio>

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

std::vector<StickyBackend> sticky_of(const config::Pool& pool) {
  std::vector<StickyBackend> out;
  if (!pool.sticky) return out;
  const config::Sticky& sticky = *pool.sticky;
  std::string attributes = "; Path=/; HttpOnly; SameSite=Lax";
  if (sticky.max_age.count() > 0) {
    attributes += "; Max-Age=" + std::to_string(sticky.max_age.count() / 1000);
  }
  for (const config::Backend& b : pool.backends) {
    std::string material = sticky.secret + '\0' + pool.name + '\0' + b.address.to_string();
    char id[17];
    std::snprintf(id, sizeof id, "%016llx",
                  static_cast<unsigned long long>(balance::hash_key(material)));
    std::string line = "Set-Cookie: " + sticky.cookie + "=" + id + attributes;
    out.push_back({id, line + "\r\n", line + "; Secure\r\n"});
  }
  return out;
}

}  // namespace

// The configuration was validated, so the algorithm exists and the pool has backends.
PoolState::PoolState(const config::Pool& pool, uint32_t pool_id, uint32_t first_id)
    : config(pool),
      id(pool_id),
      snapshot(snapshot_of(pool)),
      options(options_of(pool)),
      picker(std::move(*balance::build(pool.balance, snapshot, options))),
      key_source(balance::find_algorithm(pool.balance)->key),
      first_backend_id(first_id),
      live(static_cast<uint32_t>(snapshot.backends.size())),
      retry_budget(pool.retries.budget_percent / 100, pool.retries.budget_floor_per_second),
      sticky(sticky_of(pool)) {}

uint32_t PoolState::sticky_backend(std::string_view id) const {
  for (uint32_t i = 0; i < sticky.size(); ++i) {
    if (sticky[i].id == id) return i;
  }
  return balance::kNoBackend;
}

}  // namespace usher::proxy
