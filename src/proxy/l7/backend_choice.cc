#include "proxy/l7/backend_choice.h"

#include "proxy/pool_queue.h"
#include "proxy/worker.h"

namespace usher::proxy::l7 {

uint32_t first_candidate(PoolState& pool, const RequestInfo& info, balance::Candidates& candidates,
                         PickTrace& trace) {
  if (info.sticky_backend != balance::kNoBackend &&
      pool.live.usable_for_pinned(info.sticky_backend) &&
      pool.live.try_begin(info.sticky_backend)) {
    trace.sticky = true;
    candidates.add_tried(info.sticky_backend);
    return info.sticky_backend;
  }
  return take_backend(pool, candidates);
}

net::Task<uint32_t> queued_candidate(Client& c, PoolState& pool, const RequestInfo& info,
                                     balance::Candidates& candidates, int& status) {
  Worker& w = c.worker;
  metrics::PoolCounters& counters = w.metrics().pools[pool.id];
  // Nobody overtakes a request already waiting on any worker.
  if (pool.queued.load(std::memory_order_relaxed) == 0) {
    const uint32_t index = first_candidate(pool, info, candidates, c.current.pick);
    if (index != balance::kNoBackend) co_return index;
  }
  // The queue is for backends that are full, not for a pool with none usable (503 at once).
  if (!any_serving(pool)) co_return balance::kNoBackend;
  const config::PoolQueue& queue = pool.config.queue;
  if (pool.queued.fetch_add(1, std::memory_order_relaxed) >= queue.max) {
    pool.queued.fetch_sub(1, std::memory_order_relaxed);
    counters.breaker_trips[static_cast<size_t>(metrics::BreakerTrip::kQueueFull)].add();
    c.current.guard = "queue_full";
    status = 503;
    co_return balance::kNoBackend;
  }
  counters.queue_depth.add(1);
  c.current.pick.queued = true;
  const uint64_t since = w.reactor().now_ms();
  const uint32_t index =
      co_await w.pool_queue().wait(pool, info.key_hash, w.random(), since + queue.timeout.count());
  pool.queued.fetch_sub(1, std::memory_order_relaxed);
  counters.queue_depth.add(-1);
  const uint64_t waited_ms = w.reactor().now_ms() - since;
  c.current.queue_ms = static_cast<uint32_t>(waited_ms);
  counters.queue_wait.observe(static_cast<double>(waited_ms) / 1e3);
  if (index == balance::kNoBackend) {
    counters.queue_timeouts.add();
    c.current.guard = "queue_timeout";
    status = 503;
  } else {
    candidates.add_tried(index);
  }
  co_return index;
}

}  // namespace usher::proxy::l7
