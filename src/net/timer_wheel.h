#pragma once
// A hashed timer wheel: O(1) arm and cancel, one per worker. Timeouts here are coarse (tens of
// milliseconds to minutes), so a 10 ms tick is plenty. Thread rule: owned by one worker's loop.
#include <cstdint>

namespace usher::net {

struct TimerEntry {
  uint64_t expiry_ms = 0;
  TimerEntry* prev = nullptr;
  TimerEntry* next = nullptr;
  void (*fire)(TimerEntry*) = nullptr;
  bool armed() const { return prev != nullptr; }
};

class TimerWheel {
 public:
  static constexpr uint64_t kTickMs = 10;
  static constexpr uint64_t kSlots = 1024;

  explicit TimerWheel(uint64_t now_ms);
  TimerWheel(const TimerWheel&) = delete;
  TimerWheel& operator=(const TimerWheel&) = delete;

  void arm(TimerEntry& entry, uint64_t expiry_ms);
  void cancel(TimerEntry& entry);
  // Fires every entry due at or before now_ms.
  void advance(uint64_t now_ms);
  bool empty() const { return armed_ == 0; }

 private:
  TimerEntry slots_[kSlots];  // list heads (sentinels)
  uint64_t current_tick_;
  uint64_t armed_ = 0;
};

}  // namespace usher::net
