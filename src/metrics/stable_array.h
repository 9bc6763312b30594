#pragma once
// An array that grows without moving: elements live in fixed chunks found through a table of
// chunk pointers sized once. The control thread grows it; workers index it without a lock, and
// see a grown chunk because the ids that reach it are published after it (with a release store
// that their acquire load pairs with).
#include <atomic>
#include <cstddef>
#include <memory>

namespace usher::metrics {

template <typename T>
class StableArray {
 public:
  static constexpr size_t kChunk = 256;
  static constexpr size_t kMaxChunks = 4096;  // a million ids over the life of the process

  StableArray() : chunks_(std::make_unique<std::atomic<T*>[]>(kMaxChunks)) {}
  StableArray(const StableArray&) = delete;
  StableArray& operator=(const StableArray&) = delete;
  ~StableArray() {
    for (size_t i = 0; i < kMaxChunks; ++i) delete[] chunks_[i].load(std::memory_order_relaxed);
  }

  T& operator[](size_t id) {
    return chunks_[id / kChunk].load(std::memory_order_relaxed)[id % kChunk];
  }
  const T& operator[](size_t id) const {
    return chunks_[id / kChunk].load(std::memory_order_relaxed)[id % kChunk];
  }
  // Control thread only: makes ids below `count` usable.
  void reserve(size_t count) {
    for (size_t i = 0; i * kChunk < count; ++i) {
      if (!chunks_[i].load(std::memory_order_relaxed)) {
        chunks_[i].store(new T[kChunk], std::memory_order_release);
      }
    }
  }

 private:
  std::unique_ptr<std::atomic<T*>[]> chunks_;
};

}  // namespace usher::metrics
