#include "proxy/pool_state.h"

#include <spdlog/spdlog.h>

#include <cstdio>

#include "health/outlier.h"
#include "net/reactor.h"

namespace usher::proxy {

namespace {

using namespace std::chrono_literals;

// A pick takes microseconds; a replaced membership is freed well after the last one ended.
constexpr auto kRetireAfter = 10s;

balance::Options options_of(const config::Pool& pool) {
  balance::Options options;
  options.hash_balance_factor = pool.hash_balance_factor;
  options.slow_start_ms = static_cast<uint64_t>(pool.slow_start.count());
  if (pool.locality_aware && pool.locality) {
    options.locality = balance::Locality{pool.locality->zone, pool.locality->region};
  }
  return options;
}

}  // namespace

// The configuration was validated, so the algorithm exists and the pool has backends.
PoolState::PoolState(const config::Pool& pool, metrics::Registry& registry,
                     const PoolState* previous)
    : config(pool),
      id(registry.pool_id(pool.name)),
      options(options_of(pool)),
      live(static_cast<uint32_t>(pool.backends.size()) + kSpareSlots),
      retry_budget(pool.retries.budget_percent / 100, pool.retries.budget_floor_per_second),
      registry_(registry),
      capacity_(static_cast<uint32_t>(pool.backends.size()) + kSpareSlots),
      slots_(std::make_unique<Slot[]>(capacity_)),
      backend_ids_(std::make_unique<uint32_t[]>(capacity_)) {
  live.set_max_active(pool.max_connections);
  balance::BackendSnapshot snapshot;
  const auto configured = static_cast<uint32_t>(pool.backends.size());
  for (uint32_t i = 0; i < capacity_; ++i) {
    if (i < configured) {
      const config::Backend& b = pool.backends[i];
      slots_[i] = {b.address, b.name, sticky_for(b.address), b.zone, b.region};
      backend_ids_[i] = registry.backend_id(pool.name, b.address.to_string());
      snapshot.backends.push_back({b.address, b.weight, b.zone, b.region});
      const uint32_t before =
          previous ? previous->find(b.address.to_string()) : balance::kNoBackend;
      if (before != balance::kNoBackend) {
        take_over(i, *previous, before);
      } else if (previous) {  // joined by a reload or a discovery file: slow start, as an add
        live[i].serving_since_ms.store(net::monotonic_ms(), std::memory_order_relaxed);
        // Checked before it serves: a new instance may still be starting (the checker's first
        // pass brings it up and starts its slow start).
        if (pool.health) {
          live[i].healthy.store(false, std::memory_order_relaxed);
          live[i].awaiting_first_check.store(true, std::memory_order_relaxed);
        }
      }
    } else {
      live[i].admin_state.store(balance::kRemoved, std::memory_order_relaxed);
      live[i].healthy.store(false, std::memory_order_relaxed);
    }
  }
  if (previous) trust_joiners_if_alone(configured);
  if (previous) live.set_panic(previous->live.panic());
  slot_count_.store(configured, std::memory_order_release);
  publish(std::move(snapshot));
}

// A pool whose every serving backend is new (a blue/green switch, a DNS answer changed whole)
// would have nothing to serve until their checks pass: its joiners are trusted as at a start.
void PoolState::trust_joiners_if_alone(uint32_t configured) {
  constexpr auto relaxed = std::memory_order_relaxed;
  for (uint32_t i = 0; i < configured; ++i) {
    const balance::BackendLive& b = live[i];
    if (!b.awaiting_first_check.load(relaxed) && b.healthy.load(relaxed) &&
        b.admin_state.load(relaxed) == balance::kServing) {
      return;
    }
  }
  for (uint32_t i = 0; i < configured; ++i) {
    if (live[i].awaiting_first_check.exchange(false, relaxed)) live[i].healthy.store(true, relaxed);
  }
}

// What was learnt about a backend that stays: its health, ejection, latency and slow start, and
// an operator's drain or disable. Requests in flight stay counted where they started.
void PoolState::take_over(uint32_t slot, const PoolState& previous, uint32_t previous_slot) {
  constexpr auto relaxed = std::memory_order_relaxed;
  const balance::BackendLive& from = previous.live[previous_slot];
  balance::BackendLive& to = live[slot];
  to.healthy.store(from.healthy.load(relaxed), relaxed);
  to.awaiting_first_check.store(from.awaiting_first_check.load(relaxed), relaxed);
  to.latency_ms.store(from.latency_ms.load(relaxed), relaxed);
  to.latency_updated_ms.store(from.latency_updated_ms.load(relaxed), relaxed);
  to.serving_since_ms.store(from.serving_since_ms.load(relaxed), relaxed);
  to.consecutive_failures.store(from.consecutive_failures.load(relaxed), relaxed);
  to.ejected_until_ms.store(from.ejected_until_ms.load(relaxed), relaxed);
  to.ejections.store(from.ejections.load(relaxed), relaxed);
  to.admin_state.store(from.admin_state.load(relaxed) & (balance::kDraining | balance::kDisabled),
                       relaxed);
  to.went_down.store(from.went_down.load(relaxed), relaxed);
  to.went_up.store(from.went_up.load(relaxed), relaxed);
}

PoolState::~PoolState() = default;

StickyBackend PoolState::sticky_for(const Address& address) const {
  if (!config.sticky) return {};
  const config::Sticky& sticky = *config.sticky;
  std::string attributes = "; Path=/; HttpOnly; SameSite=Lax";
  if (sticky.max_age.count() > 0) {
    attributes += "; Max-Age=" + std::to_string(sticky.max_age.count() / 1000);
  }
  std::string material = sticky.secret + '\0' + config.name + '\0' + address.to_string();
  char id[17];
  std::snprintf(id, sizeof id, "%016llx",
                static_cast<unsigned long long>(balance::hash_key(material)));
  std::string line = "Set-Cookie: " + sticky.cookie + "=" + id + attributes;
  return {id, line + "\r\n", line + "; Secure\r\n"};
}

void PoolState::publish(balance::BackendSnapshot snapshot) {
  // The configuration was validated, so the algorithm builds.
  std::unique_ptr<balance::Balancer> next =
      std::move(*balance::Balancer::build(config.balance, std::move(snapshot), options));
  balancer_.store(next.get(), std::memory_order_release);
  const auto now = std::chrono::steady_clock::now();
  if (current_) retired_.push_back({now, std::move(current_)});
  current_ = std::move(next);
  std::erase_if(retired_, [now](const Retired& r) { return now - r.at > kRetireAfter; });
}

uint32_t PoolState::sticky_backend(std::string_view id) const {
  if (!config.sticky) return balance::kNoBackend;
  const uint32_t count = slot_count();
  for (uint32_t i = 0; i < count; ++i) {
    if (slots_[i].sticky.id == id) return i;
  }
  return balance::kNoBackend;
}

uint32_t PoolState::find(std::string_view name_or_address) const {
  uint32_t found = balance::kNoBackend;
  for_each_member([&](uint32_t i) {
    if (slots_[i].name == name_or_address || slots_[i].address.to_string() == name_or_address)
      found = i;
  });
  return found;
}

uint32_t PoolState::weight(uint32_t slot) const {
  const balance::BackendSnapshot& snapshot = balancer().snapshot();
  return slot < snapshot.backends.size() ? snapshot.backends[slot].weight : 0;
}

void PoolState::record_outcome(uint32_t slot, bool failed, uint64_t now_ms) {
  if (!config.outlier) return;
  const health::Outlier outlier(*config.outlier);
  if (!outlier.observe(live[slot], failed)) return;
  uint32_t ejected = 0, members = 0;
  for_each_member([&](uint32_t i) {
    ++members;
    ejected += live[i].ejected_until_ms.load(std::memory_order_relaxed) != 0;
  });
  const auto ejection = outlier.eject(live[slot], ejected, members, now_ms);
  if (!ejection) return;
  spdlog::warn(
      "outlier: pool={} backend={} UP -> EJECTED for {} ms after {} consecutive failures (ejection "
      "{})",
      config.name, slots_[slot].name, ejection->until_ms - now_ms,
      outlier.rule().consecutive_failures, ejection->times);
}

Expected<uint32_t> PoolState::add(const Address& address, std::string name, uint32_t weight) {
  std::lock_guard lock(change_mutex_);
  if (std::string problem = config::weight_problem(weight); !problem.empty()) return Error{problem};
  if (name.empty()) name = address.to_string();
  bool taken = false;
  for_each_member(
      [&](uint32_t i) { taken = taken || slots_[i].address == address || slots_[i].name == name; });
  if (taken) return Error{"pool '" + config.name + "' already has a backend " + name};
  const uint32_t slot = slot_count();
  if (slot == capacity_) {
    return Error{"pool '" + config.name + "' has no free slot left (" +
                 std::to_string(kSpareSlots) +
                 " backends can be added per run): put the backend in the configuration"};
  }
  slots_[slot] = {address, std::move(name), sticky_for(address), {}, {}};
  backend_ids_[slot] = registry_.backend_id(config.name, address.to_string());
  balance::BackendLive& b = live[slot];
  b.healthy.store(true, std::memory_order_relaxed);
  b.serving_since_ms.store(net::monotonic_ms(), std::memory_order_relaxed);  // slow start
  balance::BackendSnapshot snapshot = balancer().snapshot();
  snapshot.backends.push_back({address, weight, {}, {}});
  slot_count_.store(slot + 1, std::memory_order_release);
  b.admin_state.store(balance::kServing, std::memory_order_release);
  publish(std::move(snapshot));
  return slot;
}

Expected<bool> PoolState::remove(uint32_t slot) {
  std::lock_guard lock(change_mutex_);
  uint32_t remaining = 0;
  for_each_member([&](uint32_t) { ++remaining; });
  if (!present(slot)) return Error{"no such backend"};
  if (remaining == 1) return Error{"a pool keeps at least one backend"};
  // Requests in flight finish on it; no new one is sent. The slot keeps its place.
  live[slot].admin_state.store(balance::kRemoved, std::memory_order_release);
  return true;
}

Expected<bool> PoolState::set_weight(uint32_t slot, uint32_t weight) {
  std::lock_guard lock(change_mutex_);
  if (!present(slot)) return Error{"no such backend"};
  if (std::string problem = config::weight_problem(weight); !problem.empty()) return Error{problem};
  balance::BackendSnapshot snapshot = balancer().snapshot();
  snapshot.backends[slot].weight = weight;
  publish(std::move(snapshot));
  return true;
}

}  // namespace usher::proxy
