#pragma once
// Choosing a request's backend: a sticky client's own while it is usable and has room, else the
// algorithm's pick; with max_connections, a turn in the pool's queue when every backend is full.
// And the pool's breaker on retries in flight. Worker thread only.
#include <cstdint>

#include "balance/balancer.h"
#include "net/task.h"
#include "proxy/l7/session.h"
#include "proxy/pool_state.h"

namespace usher::proxy::l7 {

// The first candidate, its place taken (counted active on it); kNoBackend when none is usable.
uint32_t first_candidate(PoolState& pool, const RequestInfo& info, balance::Candidates& candidates,
                         PickTrace& trace);

// A request's backend when the pool limits requests per backend: at once while nobody waits and
// one has room, else after waiting its turn in the queue. kNoBackend with `status` 503: the queue
// was full or the wait too long (counted, and said in the access log); kNoBackend with `status`
// 0: no backend is usable at all.
net::Task<uint32_t> queued_candidate(Client& c, PoolState& pool, const RequestInfo& info,
                                     balance::Candidates& candidates, int& status);

// A request's count among the pool's retries in flight (max_pending_retries).
class RetrySlot {
 public:
  explicit RetrySlot(PoolState& pool) : pool_(pool) {}
  RetrySlot(const RetrySlot&) = delete;
  RetrySlot& operator=(const RetrySlot&) = delete;
  ~RetrySlot() {
    if (held_) pool_.retries_in_flight.fetch_sub(1, std::memory_order_relaxed);
  }
  // False when the breaker is open: the pool has max_pending_retries in flight already.
  bool take() {
    const uint32_t max = pool_.config.max_pending_retries;
    if (held_ || max == 0) return true;
    if (pool_.retries_in_flight.fetch_add(1, std::memory_order_relaxed) >= max) {
      pool_.retries_in_flight.fetch_sub(1, std::memory_order_relaxed);
      return false;
    }
    held_ = true;
    return true;
  }

 private:
  PoolState& pool_;
  bool held_ = false;
};

}  // namespace usher::proxy::l7
