#pragma once
// What all workers share about one pool: its backends in fixed slots, the current membership
// (the balancer: snapshot, picker, ticket counter) and the live counters. Read lock-free from every
// worker; counters are relaxed atomics.
//
// Membership changes at run time (admin API: add, remove, set a weight) never move a backend:
// each keeps its slot, so in-flight requests and live counters stay attached to it. A change
// builds a new balancer and publishes it with one atomic store; a replaced one is freed at the
// first change ten seconds or more after it was replaced (a pick takes microseconds, and each try
// of a request asks for the current balancer again). A pool state belongs to one configuration
// generation; the next generation's state of the same pool takes over what it knew of each backend
// that stays.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "balance/balancer.h"
#include "balance/live.h"
#include "balance/snapshot.h"
#include "base/expected.h"
#include "config/config.h"
#include "metrics/registry.h"
#include "proxy/recent_picks.h"
#include "proxy/retry_budget.h"

namespace usher::proxy {

// The opaque id a sticky cookie names a backend by, and the Set-Cookie lines that pin to it.
// Ids hash the pool name, the backend address and the configured secret: the same on every
// usher instance with the same configuration, and across restarts.
struct StickyBackend {
  std::string id;
  std::string set_cookie;         // "Set-Cookie: NAME=ID; ...\r\n"
  std::string set_cookie_secure;  // the same with Secure, for clients on HTTPS
};

// One backend for the life of the process. Written once before the slot is published (its
// admin_state leaves kRemoved with a release store), never changed after.
struct Slot {
  Address address;
  std::string name;
  StickyBackend sticky;  // empty id without `sticky`
  std::string zone;      // empty: none given (an added backend, or not in the file)
  std::string region;
};

struct PoolState {
  // Room for backends added at run time beyond the configured ones.
  static constexpr uint32_t kSpareSlots = 32;

  // `previous`: the same pool in the generation before, whose backends' state carries over.
  PoolState(const config::Pool& pool, metrics::Registry& registry, const PoolState* previous);
  ~PoolState();

  uint32_t capacity() const { return capacity_; }
  // Slots in use so far (configured plus added; removed ones included). Any thread.
  uint32_t slot_count() const { return slot_count_.load(std::memory_order_acquire); }
  bool present(uint32_t slot) const {
    return slot < slot_count() &&
           !(live[slot].admin_state.load(std::memory_order_acquire) & balance::kRemoved);
  }
  const Slot& slot(uint32_t i) const { return slots_[i]; }
  // Calls f(slot) for every backend currently in the pool. Any thread.
  template <typename F>
  void for_each_member(F&& f) const {
    const uint32_t count = slot_count();
    for (uint32_t i = 0; i < count; ++i) {
      if (present(i)) f(i);
    }
  }
  // The current membership: the backends the algorithm chooses among (slots 0..n-1; removed
  // ones stay in it, unusable, so that indices never move). Any thread; valid for the duration
  // of a pick (a replaced one lives 10 s more), so a request asks again for each try.
  const balance::Balancer& balancer() const { return *balancer_.load(std::memory_order_acquire); }

  // Worker thread: the backend a sticky cookie's id names, or balance::kNoBackend.
  uint32_t sticky_backend(std::string_view id) const;

  // Admin thread. Errors are messages for the API's answer.
  Expected<uint32_t> add(const Address& address, std::string name, uint32_t weight);
  Expected<bool> remove(uint32_t slot);
  Expected<bool> set_weight(uint32_t slot, uint32_t weight);
  uint32_t weight(uint32_t slot) const;
  // The slot of a present backend by name or address, or kNoBackend.
  uint32_t find(std::string_view name_or_address) const;

  // The process-wide number of a slot's backend: its metrics and upstream connections, the same
  // across generations for the same pool and address.
  uint32_t backend_id(uint32_t slot) const { return backend_ids_[slot]; }
  // Passive checks (the pool's `outlier`) on one outcome of real traffic on a slot's backend, a
  // request's try or a udp session's: enough failures in a row eject it. Any worker thread.
  void record_outcome(uint32_t slot, bool failed, uint64_t now_ms);
  // Takes the backend out of the pool for good (a reload removed it). Any thread.
  void retire(uint32_t slot) {
    live[slot].admin_state.store(balance::kRemoved, std::memory_order_release);
  }

  const config::Pool& config;
  uint32_t id;  // process-wide number, for metrics
  balance::Options options;
  balance::LiveState live;  // by slot, capacity() of them
  RetryBudget retry_budget;
  // Process-wide, for max_connections' queue and max_pending_retries.
  std::atomic<uint32_t> queued{0};
  std::atomic<uint32_t> retries_in_flight{0};
  RecentPicks recent_picks;  // for the dashboard

 private:
  void publish(balance::BackendSnapshot snapshot);
  StickyBackend sticky_for(const Address& address) const;
  void take_over(uint32_t slot, const PoolState& previous, uint32_t previous_slot);
  void trust_joiners_if_alone(uint32_t configured);

  metrics::Registry& registry_;
  uint32_t capacity_;
  std::unique_ptr<Slot[]> slots_;
  std::unique_ptr<uint32_t[]> backend_ids_;
  std::atomic<uint32_t> slot_count_{0};
  std::atomic<const balance::Balancer*> balancer_{nullptr};
  std::mutex change_mutex_;  // admin side only: serialises membership changes
  struct Retired {
    std::chrono::steady_clock::time_point at;
    std::unique_ptr<balance::Balancer> balancer;
  };
  std::vector<Retired> retired_;
  std::unique_ptr<balance::Balancer> current_;
};

}  // namespace usher::proxy
