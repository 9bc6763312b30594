#include "net/timer_wheel.h"

namespace usher::net {

TimerWheel::TimerWheel(uint64_t now_ms) : current_tick_(now_ms / kTickMs) {
  for (TimerEntry& head : slots_) head.prev = head.next = &head;
}

void TimerWheel::arm(TimerEntry& entry, uint64_t expiry_ms) {
  if (entry.armed()) cancel(entry);
  entry.expiry_ms = expiry_ms;
  uint64_t tick = expiry_ms / kTickMs;
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
      // fire() only queues work, so it cannot unlink `next` under us.
      if (e->expiry_ms <= now_ms) {
        cancel(*e);
        e->fire(e);
      }
      e = next;
    }
  }
  current_tick_ = target;
}

}  // namespace usher::net
