#include "proxy/pool_queue.h"

#include <algorithm>
#include <array>

namespace usher::proxy {

uint32_t take_backend(PoolState& pool, balance::Candidates& candidates) {
  // Bounded: a backend that another worker fills between the pick and the take is skipped, and
  // past kMaxTried candidates the walk may offer one again.
  for (size_t attempt = 0; attempt < 2 * balance::Candidates::kMaxTried; ++attempt) {
    const uint32_t index = pool.balancer().next(candidates, pool.live);
    if (index == balance::kNoBackend) return index;
    if (pool.live.try_begin(index)) return index;
  }
  return balance::kNoBackend;
}

bool any_serving(const PoolState& pool) {
  bool serving = false;
  pool.for_each_member([&](uint32_t i) { serving = serving || pool.live.serving(i); });
  return serving;
}

net::Task<uint32_t> PoolQueue::wait(PoolState& pool, uint64_t key_hash, uint64_t random,
                                    uint64_t deadline_ms) {
  Waiter w{&pool, key_hash, random, deadline_ms};
  w.queue = this;
  w.prev = tail_;
  (tail_ ? tail_->next : head_) = &w;
  tail_ = &w;
  if (!pumping_) {
    pumping_ = true;
    net::spawn(pump());
  }
  co_return co_await Parked{w};
}

net::Task<void> PoolQueue::pump() {
  while (head_) {
    co_await net::sleep_until(reactor_, reactor_.now_ms() + 1);
    serve();
  }
  pumping_ = false;
}

// Offers free places in arrival order; once a pool has none left, its later waiters only check
// their deadlines, so none overtakes an earlier one.
void PoolQueue::serve() {
  const uint64_t now = reactor_.now_ms();
  std::array<const PoolState*, 8> full{};
  size_t full_count = 0;
  for (Waiter* w = head_; w;) {
    Waiter* next = w->next;  // w's coroutine may end once resumed
    const bool blocked =
        std::find(full.begin(), full.begin() + full_count, w->pool) != full.begin() + full_count;
    uint32_t backend = balance::kNoBackend;
    if (!blocked) {
      balance::Candidates candidates = w->pool->balancer().candidates(w->key_hash, w->random, now);
      backend = take_backend(*w->pool, candidates);
      if (backend == balance::kNoBackend && full_count < full.size()) full[full_count++] = w->pool;
    }
    if (backend != balance::kNoBackend || now >= w->deadline_ms) {
      unlink(*w);
      w->backend = backend;
      w->handle.resume();
    }
    w = next;
  }
}

void PoolQueue::unlink(Waiter& w) {
  (w.prev ? w.prev->next : head_) = w.next;
  (w.next ? w.next->prev : tail_) = w.prev;
  w.next = w.prev = nullptr;
  w.queue = nullptr;
}

}  // namespace usher::proxy
