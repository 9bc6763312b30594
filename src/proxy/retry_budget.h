#pragma once
// A pool's retry budget: every request earns `ratio` of a retry, the pool also earns `floor`
// retries per second, and a retry spends one. Over any stretch of time, retries therefore add at
// most ratio x requests + floor per second to the load, so when every backend fails they cannot
// become a retry storm; savings from healthy traffic (up to kMaxSaved retries) let a pool ride
// out one backend dying without failing clients. Any thread: relaxed atomic thousandths.
#include <algorithm>
#include <atomic>
#include <cstdint>

namespace usher::proxy {

class RetryBudget {
 public:
  RetryBudget(double ratio, double floor_per_second)
      : earn_per_request_(static_cast<int64_t>(ratio * kUnit)),
        floor_per_second_(static_cast<int64_t>(floor_per_second * kUnit)),
        tokens_(std::max<int64_t>(kUnit, floor_per_second_)) {}

  void on_request() { add(earn_per_request_); }

  bool try_spend(uint64_t now_ms) {
    refill(now_ms);
    int64_t tokens = tokens_.load(std::memory_order_relaxed);
    while (tokens >= kUnit) {
      if (tokens_.compare_exchange_weak(tokens, tokens - kUnit, std::memory_order_relaxed))
        return true;
    }
    return false;
  }

 private:
  static constexpr int64_t kUnit = 1000;
  static constexpr int64_t kMaxSaved = 1000 * kUnit;

  void add(int64_t amount) {
    int64_t tokens = tokens_.load(std::memory_order_relaxed);
    while (tokens < kMaxSaved &&
           !tokens_.compare_exchange_weak(tokens, std::min(kMaxSaved, tokens + amount),
                                          std::memory_order_relaxed)) {
    }
  }

  void refill(uint64_t now_ms) {
    uint64_t last = last_refill_ms_.load(std::memory_order_relaxed);
    if (last == 0) {
      last_refill_ms_.compare_exchange_strong(last, now_ms, std::memory_order_relaxed);
      return;
    }
    if (now_ms <= last ||
        !last_refill_ms_.compare_exchange_strong(last, now_ms, std::memory_order_relaxed)) {
      return;
    }
    add(static_cast<int64_t>(now_ms - last) * floor_per_second_ / 1000);
  }

  int64_t earn_per_request_;
  int64_t floor_per_second_;
  std::atomic<int64_t> tokens_;
  std::atomic<uint64_t> last_refill_ms_{0};
};

}  // namespace usher::proxy
