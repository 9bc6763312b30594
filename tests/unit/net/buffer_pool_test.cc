#include "net/buffer_pool.h"

#include <gtest/gtest.h>

#include <vector>

#include "counted_allocations.h"

namespace usher::net {
namespace {

constexpr size_t kSize = 16 * 1024;

// `in_use` requests at once, each taking a buffer and giving it back, `rounds` times.
void steady_load(BufferPool& pool, size_t in_use, int rounds) {
  std::vector<Buffer> held;
  for (int round = 0; round < rounds; ++round) {
    for (size_t i = 0; i < in_use; ++i) held.push_back(pool.take());
    held.clear();
  }
}

TEST(BufferPool, AReturnedBufferIsLentAgain) {
  BufferPool pool(kSize);
  char* first = pool.take().data();
  Buffer again = pool.take();
  EXPECT_EQ(again.data(), first);
  EXPECT_EQ(again.capacity(), kSize);
  EXPECT_TRUE(again.empty());
}

TEST(BufferPool, ASteadyLoadOfManyAtOnceNeedsNoAllocationAfterWarmUp) {
  BufferPool pool(kSize);
  CountedAllocations allocations;
  steady_load(pool, 300, 1);
  EXPECT_EQ(allocations.count(), 300u);
  steady_load(pool, 300, 100);  // 30 000 returns: several epochs
  EXPECT_EQ(allocations.count(), 300u);
  EXPECT_EQ(pool.idle_count(), 300u);
}

TEST(BufferPool, WhatABurstLeftIdleGoesBackOnceTheLoadIsSmaller) {
  BufferPool pool(kSize);
  steady_load(pool, 1000, 1);
  EXPECT_EQ(pool.idle_count(), 1000u);
  steady_load(pool, 100, 100);  // 10 000 returns: at least one whole epoch at 100 in use
  EXPECT_EQ(pool.idle_count(), 100u);
  EXPECT_EQ(pool.take_released_bytes(), 900 * kSize);
}

TEST(BufferPool, OnceTheLoadHasStoppedOnlyTheReserveStays) {
  BufferPool pool(kSize);
  steady_load(pool, 500, 1);
  pool.trim();  // buffers were taken since the last look: the load may go on
  EXPECT_EQ(pool.idle_count(), 500u);
  pool.trim();
  EXPECT_EQ(pool.idle_count(), 64u);
  EXPECT_EQ(pool.take_released_bytes(), 436 * kSize);
  steady_load(pool, 10, 1);
  pool.trim();
  pool.trim();
  EXPECT_EQ(pool.idle_count(), 64u);
}

}  // namespace
}  // namespace usher::net
