#pragma once
// What changes per request about each backend: active requests and the latency estimate. Shared
// by all workers of the process (so least-connections means least across the whole process) as
// relaxed atomics on their own cache lines; the simulator drives the same type.
#include <atomic>
#include <cstdint>
#include <memory>
#include <span>

namespace usher::balance {

// Draining: the algorithm picks it no more, clients pinned to it (sticky) still reach it, and
// requests in flight finish. Disabled: nothing new reaches it at all. Removed: no longer a member
// of its pool (or a slot not used yet).
enum AdminState : uint8_t { kServing = 0, kDraining = 1, kDisabled = 2, kRemoved = 4 };

struct alignas(64) BackendLive {
  std::atomic<uint32_t> active{0};
  std::atomic<double> latency_ms{0};  // peak-EWMA estimate; 0 = none yet
  std::atomic<uint64_t> latency_updated_ms{0};
  std::atomic<uint64_t> serving_since_ms{0};      // start of slow start for this backend
  std::atomic<bool> healthy{true};                // set by health checks; pickers skip false
  std::atomic<uint32_t> consecutive_failures{0};  // on real traffic (passive checks)
  std::atomic<uint64_t> ejected_until_ms{0};      // 0: not ejected
  std::atomic<uint32_t> ejections{0};
  // What an operator decided through the admin API (AdminState bits).
  std::atomic<uint8_t> admin_state{0};
  std::atomic<uint32_t> went_down{0};  // health transitions, counted by the checker
  std::atomic<uint32_t> went_up{0};
  // Joined a running pool that has health checks: unhealthy until its first check passes.
  std::atomic<bool> awaiting_first_check{false};
};

class LiveState {
 public:
  explicit LiveState(uint32_t backends)
      : size_(backends), backends_(std::make_unique<BackendLive[]>(backends)) {}

  uint32_t size() const { return size_; }
  BackendLive& operator[](uint32_t i) { return backends_[i]; }
  const BackendLive& operator[](uint32_t i) const { return backends_[i]; }
  uint32_t active(uint32_t i) const { return backends_[i].active.load(std::memory_order_relaxed); }
  // The operator's word wins over panic: they took the backend out on purpose. A backend at its
  // max_active is skipped like an unusable one, so every algorithm spills to one with room.
  bool usable(uint32_t i) const { return serving(i) && has_room(i); }
  // Usable but for its max_active: a request for it waits in the pool's queue rather than fails.
  bool serving(uint32_t i) const {
    const BackendLive& b = backends_[i];
    if (b.admin_state.load(std::memory_order_relaxed) != kServing) return false;
    return b.healthy.load(std::memory_order_relaxed) || panic_.load(std::memory_order_relaxed);
  }
  // For a client pinned to backend i by a sticky cookie: draining still serves it.
  bool usable_for_pinned(uint32_t i) const {
    const BackendLive& b = backends_[i];
    if (b.admin_state.load(std::memory_order_relaxed) & (kDisabled | kRemoved)) return false;
    if (!has_room(i)) return false;
    return b.healthy.load(std::memory_order_relaxed) || panic_.load(std::memory_order_relaxed);
  }
  // A pool's max_connections: requests in flight per backend (0: no limit). Set before use.
  void set_max_active(uint32_t max) { max_active_ = max; }
  uint32_t max_active() const { return max_active_; }
  bool has_room(uint32_t i) const { return max_active_ == 0 || active(i) < max_active_; }
  // Panic mode (Envoy's): too few backends are healthy to carry the load, so every backend is
  // used, healthy or not, rather than crushing the few that are left.
  void set_panic(bool on) { panic_.store(on, std::memory_order_relaxed); }
  bool panic() const { return panic_.load(std::memory_order_relaxed); }
  // Members are the backends not removed from their pool (kRemoved also marks unused slots).
  bool member(uint32_t i) const {
    return !(backends_[i].admin_state.load(std::memory_order_relaxed) & kRemoved);
  }
  uint32_t member_count() const {
    uint32_t n = 0;
    for (uint32_t i = 0; i < size_; ++i) n += member(i);
    return n;
  }
  uint32_t healthy_count() const {
    uint32_t n = 0;
    for (uint32_t i = 0; i < size_; ++i)
      n += member(i) && backends_[i].healthy.load(std::memory_order_relaxed);
    return n;
  }
  // The next usable backend after `after` in candidate order, another one whenever one is usable;
  // ~0u when none is.
  uint32_t next_usable(uint32_t after) const {
    for (uint32_t step = 1; step <= size_; ++step) {
      uint32_t i = (after + step) % size_;
      if (usable(i)) return i;
    }
    return ~0u;
  }

  // Any thread: a request to backend i starts / ends.
  void begin(uint32_t i) { backends_[i].active.fetch_add(1, std::memory_order_relaxed); }
  // Begins a request on backend i only below max_active: one compare-and-swap, so workers
  // racing for the last place never both take it.
  bool try_begin(uint32_t i) {
    if (max_active_ == 0) {
      begin(i);
      return true;
    }
    std::atomic<uint32_t>& active = backends_[i].active;
    uint32_t n = active.load(std::memory_order_relaxed);
    while (n < max_active_) {
      if (active.compare_exchange_weak(n, n + 1, std::memory_order_relaxed)) return true;
    }
    return false;
  }
  void end(uint32_t i) { backends_[i].active.fetch_sub(1, std::memory_order_relaxed); }

  // Peak EWMA (Finagle/Linkerd): a slower sample takes over at once, faster samples pull the
  // estimate down with weight exp(-elapsed/decay). Races between workers may drop a sample;
  // the estimate stays a plausible recent latency either way.
  void observe_latency(uint32_t i, double sample_ms, uint64_t now_ms, double decay_ms);

 private:
  uint32_t size_;
  std::unique_ptr<BackendLive[]> backends_;
  std::atomic<bool> panic_{false};
  uint32_t max_active_ = 0;
};

// What an algorithm reads of the live state: every backend of the pool, or the members of one
// locality tier, which the tier's own picker numbers 0..n-1 (`members` maps them to the pool's
// slots). Cheap to copy; valid while the LiveState and the member list are.
class LiveView {
 public:
  LiveView(const LiveState& live) : live_(&live) {}  // NOLINT: every backend, as numbered
  LiveView(const LiveState& live, std::span<const uint32_t> members)
      : live_(&live), members_(members) {}

  const LiveState& state() const { return *live_; }
  uint32_t slot(uint32_t i) const { return members_.empty() ? i : members_[i]; }
  bool usable(uint32_t i) const { return live_->usable(slot(i)); }
  uint32_t active(uint32_t i) const { return live_->active(slot(i)); }
  const BackendLive& operator[](uint32_t i) const { return (*live_)[slot(i)]; }

 private:
  const LiveState* live_;
  std::span<const uint32_t> members_;  // empty: the identity
};

}  // namespace usher::balance
