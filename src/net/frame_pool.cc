#include "net/frame_pool.h"

#include <algorithm>
#include <cstdlib>
#include <new>
#include <utility>

#include "base/allocation_count.h"

namespace usher::net {

namespace {

constexpr std::size_t kGranule = 64;
constexpr std::size_t kClasses = 64;            // frames up to 4 KiB are pooled
constexpr std::size_t kMaxFreePerClass = 1024;  // beyond this, a burst's frames go back to malloc
constexpr std::size_t kMaxSparesAtOnce = 64;

struct FreeFrame {
  FreeFrame* next;
};

struct FreeLists {
  FreeFrame* heads[kClasses] = {};
  std::size_t counts[kClasses] = {};
  std::size_t live[kClasses] = {};
  ~FreeLists() {
    for (FreeFrame*& head : heads) {
      while (head) std::free(std::exchange(head, head->next));
    }
  }
};

thread_local FreeLists free_lists;

std::size_t size_class(std::size_t size) {
  return (size + kGranule - 1) / kGranule;
}

void push_free(std::size_t cls, void* frame) {
  auto* node = static_cast<FreeFrame*>(frame);
  node->next = free_lists.heads[cls];
  free_lists.heads[cls] = node;
  ++free_lists.counts[cls];
}

void* new_frame(std::size_t size) {
  // A frame the pool could not serve is a heap allocation like any other (see allocation_count.h).
  count_allocation();
  void* memory = std::malloc(size);
  if (memory == nullptr) throw std::bad_alloc();
  return memory;
}

// A class that ran dry gets as many spare frames as it has in use, so it doubles as a vector's
// capacity does: how many frames a load holds at once swings from one loop turn to the next (a
// turn's writes keep their coroutines until it ends), and a swing above the busiest moment seen
// so far then mostly finds its frames waiting instead of reaching the allocator. At most
// kMaxSparesAtOnce at a time, though: the spares are fresh memory, and a thousand of them made in
// one coroutine's turn faulted 500 pages in while every other connection of the worker waited
// (7 ms on a virtual machine where a page fault costs about 15 µs, docs/benchmarks.md).
void add_spares(std::size_t cls) {
  std::size_t spares =
      std::min({free_lists.live[cls], kMaxSparesAtOnce, kMaxFreePerClass - free_lists.counts[cls]});
  for (; spares > 0; --spares) push_free(cls, new_frame(cls * kGranule));
}

}  // namespace

// Under AddressSanitizer every frame is its own allocation, so that a frame used after it was
// freed is reported instead of silently recycled.
#if defined(__SANITIZE_ADDRESS__)
constexpr bool kRecycleFrames = false;
#else
constexpr bool kRecycleFrames = true;
#endif

void* allocate_frame(std::size_t size) {
  if (!kRecycleFrames) {
    if (void* memory = std::malloc(size)) return memory;
    throw std::bad_alloc();
  }
  std::size_t cls = size_class(size);
  if (cls >= kClasses) return new_frame(size);
  if (free_lists.heads[cls] == nullptr) add_spares(cls);
  ++free_lists.live[cls];
  if (FreeFrame* frame = free_lists.heads[cls]) {
    free_lists.heads[cls] = frame->next;
    --free_lists.counts[cls];
    return frame;
  }
  return new_frame(cls * kGranule);
}

void free_frame(void* frame, std::size_t size) noexcept {
  if (!kRecycleFrames) return std::free(frame);
  std::size_t cls = size_class(size);
  if (cls < kClasses) {
    --free_lists.live[cls];
    if (free_lists.counts[cls] < kMaxFreePerClass) return push_free(cls, frame);
  }
  std::free(frame);
}

}  // namespace usher::net
