#include "protect/connection_counts.h"

#include <gtest/gtest.h>

#include <latch>
#include <random>
#include <thread>
#include <vector>

namespace usher::protect {
namespace {

// Well-mixed 64-bit hashes for distinct clients, as xxHash would give (splitmix64).
uint64_t client(uint64_t n) {
  uint64_t z = n + 0x9E3779B97F4A7C15;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EB;
  return z ^ (z >> 31);
}

// Clients that all land in bucket 0 with distinct tags.
uint64_t client_in_bucket_zero(uint64_t n) {
  return (n + 1) << 16;
}

TEST(ConnectionCounts, RefusesPastTheLimitAndAdmitsAgainAfterARelease) {
  ConnectionCounts counts(3);
  std::vector<ConnectionCounts::Ticket> held;
  for (int i = 0; i < 3; ++i) {
    std::optional<ConnectionCounts::Ticket> ticket = counts.acquire(client(1));
    ASSERT_TRUE(ticket);
    EXPECT_TRUE(ticket->counted());
    held.push_back(*ticket);
  }
  EXPECT_FALSE(counts.acquire(client(1)));
  EXPECT_EQ(counts.count(client(1)), 3u);
  EXPECT_TRUE(counts.acquire(client(2)));  // another client has its own count

  counts.release(held.back());
  held.pop_back();
  EXPECT_EQ(counts.count(client(1)), 2u);
  EXPECT_TRUE(counts.acquire(client(1)));
  EXPECT_FALSE(counts.acquire(client(1)));
  EXPECT_EQ(counts.overflows(), 0u);
}

TEST(ConnectionCounts, LimitZeroRefusesAndLimitsAboveSixteenBitsAreCapped) {
  EXPECT_FALSE(ConnectionCounts(0).acquire(client(1)));
  EXPECT_EQ(ConnectionCounts(1'000'000).limit(), 65535u);
}

TEST(ConnectionCounts, ManyClientsEachGetTheirOwnLimit) {
  ConnectionCounts counts(4);
  std::vector<ConnectionCounts::Ticket> held;
  for (uint64_t n = 0; n < 5'000; ++n) {
    for (int i = 0; i < 4; ++i) {
      std::optional<ConnectionCounts::Ticket> ticket = counts.acquire(client(n));
      ASSERT_TRUE(ticket && ticket->counted()) << n;
      held.push_back(*ticket);
    }
    ASSERT_FALSE(counts.acquire(client(n))) << n;
  }
  EXPECT_EQ(counts.overflows(), 0u);
  for (ConnectionCounts::Ticket ticket : held) counts.release(ticket);
  for (uint64_t n = 0; n < 5'000; ++n) ASSERT_EQ(counts.count(client(n)), 0u) << n;
}

TEST(ConnectionCounts, AFullBucketAdmitsUncountedRatherThanLockingClientsOut) {
  ConnectionCounts counts(2, 8);  // one bucket
  std::vector<ConnectionCounts::Ticket> held;
  for (uint64_t n = 0; n < 8; ++n) held.push_back(*counts.acquire(client_in_bucket_zero(n)));

  const uint64_t newcomer = client_in_bucket_zero(8);
  for (int i = 0; i < 5; ++i) {  // past its limit of 2: nothing counts it
    std::optional<ConnectionCounts::Ticket> ticket = counts.acquire(newcomer);
    ASSERT_TRUE(ticket);
    EXPECT_FALSE(ticket->counted());
    counts.release(*ticket);  // a no-op for uncounted tickets
  }
  EXPECT_EQ(counts.overflows(), 5u);
  for (uint64_t n = 0; n < 8; ++n) EXPECT_EQ(counts.count(client_in_bucket_zero(n)), 1u);

  counts.release(held[3]);  // a word frees up: the newcomer is counted again
  std::optional<ConnectionCounts::Ticket> ticket = counts.acquire(newcomer);
  ASSERT_TRUE(ticket);
  EXPECT_TRUE(ticket->counted());
  EXPECT_EQ(counts.count(newcomer), 1u);
  EXPECT_EQ(counts.count(client_in_bucket_zero(3)), 0u);
}

TEST(ConnectionCounts, FourThreadsOnOneClientAdmitExactlyTheLimit) {
  ConnectionCounts counts(100);
  std::atomic<int> admitted{0};
  std::latch start(4);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      start.arrive_and_wait();
      for (int i = 0; i < 10'000; ++i) admitted += counts.acquire(client(7)).has_value();
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(admitted.load(), 100);
  EXPECT_EQ(counts.count(client(7)), 100u);
}

TEST(ConnectionCounts, FourThreadsAcquiringAndReleasingBalanceToZero) {
  // Sixteen clients in one bucket of eight words, so that words free up and are claimed again
  // all the time, and some connections overflow uncounted.
  constexpr uint32_t kLimit = 3;
  ConnectionCounts counts(kLimit, 8);
  std::atomic<int> over_limit{0};
  std::latch start(4);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 random(t);
      std::vector<ConnectionCounts::Ticket> held;
      start.arrive_and_wait();
      for (int i = 0; i < 200'000; ++i) {
        if (!held.empty() && random() % 2) {
          size_t pick = random() % held.size();
          counts.release(held[pick]);
          held[pick] = held.back();
          held.pop_back();
          continue;
        }
        const uint64_t who = client_in_bucket_zero(random() % 16);
        if (std::optional<ConnectionCounts::Ticket> ticket = counts.acquire(who)) {
          held.push_back(*ticket);
          over_limit += counts.count(who) > kLimit * 2;  // see the header on racing claims
        }
      }
      for (ConnectionCounts::Ticket ticket : held) counts.release(ticket);
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (uint64_t n = 0; n < 16; ++n) EXPECT_EQ(counts.count(client_in_bucket_zero(n)), 0u) << n;
  EXPECT_GT(counts.overflows(), 0u);
  EXPECT_EQ(over_limit.load(), 0);
  // Every word is free again: eight new clients are all counted.
  for (uint64_t n = 100; n < 108; ++n)
    EXPECT_TRUE(counts.acquire(client_in_bucket_zero(n))->counted());
}

}  // namespace
}  // namespace usher::protect
