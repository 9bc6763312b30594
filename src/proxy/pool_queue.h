#pragma once
// Requests waiting for room on a pool's backends (`max_connections`). A backend at its limit is
// skipped by every algorithm (balance::LiveState::usable); when all are at it, the request waits
// here instead of piling onto a server, in arrival order, until a place frees or its deadline
// passes.
//
// One queue per worker, no lock: the places themselves are the process-wide active counts, taken
// with one compare-and-swap (LiveState::try_begin), and the pool's `queued` count is shared so
// that a new request on any worker waits behind those already waiting. A worker offers freed
// places to its waiters on a one-millisecond tick, so order is strict within a worker and
// within a millisecond across them.
#include <coroutine>
#include <cstdint>

#include "balance/balancer.h"
#include "net/reactor.h"
#include "net/task.h"
#include "proxy/pool_state.h"

namespace usher::proxy {

// Takes a place on the first backend with room in the algorithm's order (counted active there);
// kNoBackend when no usable backend has room.
uint32_t take_backend(PoolState& pool, balance::Candidates& candidates);

// Whether any backend of the pool could serve if it had room: the queue is for full backends,
// not for a pool that has none usable.
bool any_serving(const PoolState& pool);

class PoolQueue {
 public:
  explicit PoolQueue(net::Reactor& reactor) : reactor_(reactor) {}
  PoolQueue(const PoolQueue&) = delete;
  PoolQueue& operator=(const PoolQueue&) = delete;

  // Worker thread: waits until a backend of `pool` is taken for the request (as take_backend,
  // with the request's pick key and random number), or kNoBackend once `deadline_ms` passes.
  net::Task<uint32_t> wait(PoolState& pool, uint64_t key_hash, uint64_t random,
                           uint64_t deadline_ms);

 private:
  struct Waiter {
    PoolState* pool;
    uint64_t key_hash;
    uint64_t random;
    uint64_t deadline_ms;
    std::coroutine_handle<> handle{};
    uint32_t backend = balance::kNoBackend;
    Waiter* next = nullptr;
    Waiter* prev = nullptr;
    PoolQueue* queue = nullptr;  // set while linked
    // A waiting request whose frame goes (nothing cancels one today) must not stay in the list.
    ~Waiter() {
      if (queue) queue->unlink(*this);
    }
  };
  struct Parked {
    Waiter& waiter;
    bool await_ready() const noexcept { return false; }
    void await_suspend(std::coroutine_handle<> h) noexcept { waiter.handle = h; }
    uint32_t await_resume() const noexcept { return waiter.backend; }
  };

  net::Task<void> pump();
  void serve();
  void unlink(Waiter& w);

  net::Reactor& reactor_;
  Waiter* head_ = nullptr;
  Waiter* tail_ = nullptr;
  bool pumping_ = false;
};

}  // namespace usher::proxy
