#pragma once
// The last few explanations of a pool's picks ("least-connections picked b of 3; skipped a
// unhealthy"), for the admin API and the dashboard. Workers offer one at most every kEveryMs
// per pool (the rest are not taken, and are not even worked out); the admin thread reads them.
// A worker never waits here: when the admin thread holds the lock, the line is dropped.
#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace usher::proxy {

class RecentPicks {
 public:
  static constexpr size_t kKept = 8;
  static constexpr size_t kLongest = 320;
  static constexpr uint64_t kEveryMs = 100;

  struct Entry {
    uint64_t unix_ms = 0;
    std::string text;
  };

  // Any worker: whether a line offered now would be taken.
  bool due(uint64_t now_ms) const { return now_ms >= next_ms_.load(std::memory_order_relaxed); }

  // Any worker. `now_ms` is the worker's monotonic clock, `unix_ms` the wall clock shown.
  void offer(uint64_t now_ms, uint64_t unix_ms, std::string_view text) {
    uint64_t next = next_ms_.load(std::memory_order_relaxed);
    if (now_ms < next ||
        !next_ms_.compare_exchange_strong(next, now_ms + kEveryMs, std::memory_order_relaxed)) {
      return;  // another worker took this turn
    }
    std::unique_lock lock(mutex_, std::try_to_lock);
    if (!lock.owns_lock()) return;
    Slot& slot = slots_[written_ % kKept];
    slot.unix_ms = unix_ms;
    slot.size = static_cast<uint16_t>(std::min(text.size(), kLongest));
    std::copy_n(text.data(), slot.size, slot.text.data());
    ++written_;
  }

  // Admin thread: newest first.
  std::vector<Entry> newest_first() const {
    std::lock_guard lock(mutex_);
    std::vector<Entry> out;
    for (uint64_t i = written_; i > 0 && written_ - i < kKept; --i) {
      const Slot& slot = slots_[(i - 1) % kKept];
      out.push_back({slot.unix_ms, std::string(slot.text.data(), slot.size)});
    }
    return out;
  }

 private:
  struct Slot {
    uint64_t unix_ms = 0;
    uint16_t size = 0;
    std::array<char, kLongest> text{};
  };

  std::atomic<uint64_t> next_ms_{0};
  mutable std::mutex mutex_;
  std::array<Slot, kKept> slots_{};
  uint64_t written_ = 0;  // under mutex_
};

}  // namespace usher::proxy
