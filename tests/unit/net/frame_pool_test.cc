#include "net/frame_pool.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

#include "counted_allocations.h"

namespace usher::net {
namespace {

// `count` frames of `size` bytes held at once, then freed: one busy moment of a load.
void hold(size_t count, size_t size) {
  std::vector<void*> frames;
  for (size_t i = 0; i < count; ++i) frames.push_back(allocate_frame(size));
  for (void* frame : frames) free_frame(frame, size);
}

// The free lists are per thread and outlive a test: each test uses a size class of its own.
#if defined(__SANITIZE_ADDRESS__)
#define SKIP_UNLESS_RECYCLED() GTEST_SKIP() << "AddressSanitizer builds allocate every frame"
#else
#define SKIP_UNLESS_RECYCLED() (void)0
#endif

TEST(FramePool, ABusyMomentNoBiggerThanBeforeAllocatesNothing) {
  SKIP_UNLESS_RECYCLED();
  constexpr size_t kSize = 900;
  hold(50, kSize);
  CountedAllocations counted;
  hold(50, kSize);
  hold(10, kSize);
  EXPECT_EQ(counted.count(), 0u);
}

// One loop turn can hold more frames than the busiest moment before it: a class that runs dry
// gets as many spares as it has in use, so a swing half as big again finds them waiting.
TEST(FramePool, ASwingAboveTheBusiestMomentFindsSpares) {
  SKIP_UNLESS_RECYCLED();
  constexpr size_t kSize = 1300;
  hold(40, kSize);
  CountedAllocations counted;
  hold(60, kSize);
  EXPECT_EQ(counted.count(), 0u);
  hold(400, kSize);  // far beyond: the allocator, counted
  EXPECT_GT(counted.count(), 0u);
}

// Spares are fresh memory: a thousand made inside one coroutine's turn faulted in hundreds of
// pages while the worker's other connections waited. However many frames are in use, one
// allocation makes at most 64 of them.
TEST(FramePool, AClassThatRunsDryMakesAtMost64SparesAtOnce) {
  SKIP_UNLESS_RECYCLED();
  constexpr size_t kSize = 1700;
  std::vector<void*> frames;
  size_t most_in_one_call = 0;
  for (size_t i = 0; i < 1200; ++i) {
    CountedAllocations counted;
    frames.push_back(allocate_frame(kSize));
    if (i >= 100) most_in_one_call = std::max<size_t>(most_in_one_call, counted.count());
  }
  for (void* frame : frames) free_frame(frame, kSize);
  EXPECT_GT(most_in_one_call, 1u);  // still more than one at a time
  EXPECT_LE(most_in_one_call, 64u);
}

}  // namespace
}  // namespace usher::net
