#include "net/timer_wheel.h"

namespace usher::net {

namespace {
// Rounded up: an entry in the slot of tick T expires at or before T's start, so visiting T fires
// it without waiting for a later turn.
uint64_t tick_of(uint64_t ms) {
  return (ms + TimerWheel::kTickMs - 1) / TimerWheel::kTickMs;
}
}  // namespace

TimerWheel::TimerWheel(uint64_t now_ms) : current_tick_(now_ms / kTickMs) {
  for (TimerEntry& head : slots_) head.prev = head.next = &head;
}

void TimerWheel::arm(TimerEntry& entry, uint64_t expiry_ms) {
  if (entry.armed()) cancel(entry);
  entry.expiry_ms = expiry_ms;
  uint64_t tick = tick_of(expiry_ms);
  if (tick <= current_tick_) tick = current_tick_ + 1;
  TimerEntry& head = slots_[tick % kSlots];
  entry.next = &head;
  entry.prev = head.prev;
  head.prev->next = &entry;
  head.prev = &entry;
  ++armed_;
}

void TimerWheel::cancel(TimerEntry& entry) {
  if (!entry.armed()) return;
  entry.prev->next = entry.next;
  entry.next->prev = entry.prev;
  entry.prev = entry.next = nullptr;
  --armed_;
}

void TimerWheel::advance(uint64_t now_ms) {
  uint64_t target = now_ms / kTickMs;
  uint64_t steps = target > current_tick_ ? target - current_tick_ : 0;
  if (steps > kSlots) steps = kSlots;
  for (uint64_t s = 1; s <= steps; ++s) {
    TimerEntry& head = slots_[(current_tick_ + s) % kSlots];
    TimerEntry* e = head.next;
    while (e != &head) {
      TimerEntry* next = e->next;
      // Entries of later turns of the wheel share the slot and stay; fire() only queues work,
      // so it cannot unlink `next` under us.
      if (tick_of(e->expiry_ms) <= target) {
        cancel(*e);
        e->fire(e);
      }
      e = next;
    }
  }
  current_tick_ = target;
}

}  // namespace usher::net
