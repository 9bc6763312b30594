#pragma once
// A bounded single-producer single-consumer queue: how a worker and the cluster thread hand each
// other lease asks and answers without a lock on the worker's side. push() fails when full; the
// producer decides what that means.
#include <atomic>
#include <bit>
#include <cstddef>
#include <memory>
#include <optional>
#include <utility>

namespace usher::cluster {

template <typename T>
class SpscRing {
 public:
  // `capacity` is rounded up to a power of two.
  explicit SpscRing(size_t capacity)
      : mask_(std::bit_ceil(std::max<size_t>(capacity, 2)) - 1),
        slots_(std::make_unique<std::optional<T>[]>(mask_ + 1)) {}

  // Producer thread only.
  bool push(T value) {
    const size_t tail = tail_.load(std::memory_order_relaxed);
    if (tail - head_cache_ > mask_) {
      head_cache_ = head_.load(std::memory_order_acquire);
      if (tail - head_cache_ > mask_) return false;
    }
    slots_[tail & mask_].emplace(std::move(value));
    tail_.store(tail + 1, std::memory_order_release);
    return true;
  }

  // Consumer thread only.
  std::optional<T> pop() {
    const size_t head = head_.load(std::memory_order_relaxed);
    if (head == tail_cache_) {
      tail_cache_ = tail_.load(std::memory_order_acquire);
      if (head == tail_cache_) return std::nullopt;
    }
    std::optional<T> value = std::move(slots_[head & mask_]);
    slots_[head & mask_].reset();
    head_.store(head + 1, std::memory_order_release);
    return value;
  }

 private:
  const size_t mask_;
  std::unique_ptr<std::optional<T>[]> slots_;
  // Each index on its own line, with the other side's last seen value beside it, so that the
  // two threads only meet on a line when one finds the ring looking full or empty.
  alignas(64) std::atomic<size_t> head_{0};
  size_t tail_cache_ = 0;
  alignas(64) std::atomic<size_t> tail_{0};
  size_t head_cache_ = 0;
};

}  // namespace usher::cluster
