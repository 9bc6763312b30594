#include "protect/rate_limiter.h"

#include <gtest/gtest.h>
#include <malloc.h>

#include <algorithm>
#include <latch>
#include <random>
#include <thread>
#include <vector>

namespace usher::protect {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr int64_t kStart = 5'000'000'000;  // µs; any point works, the limiter keeps its own epoch

Clock::time_point at_us(int64_t us) {
  return Clock::time_point(Micros(kStart + us));
}

// Well-mixed 64-bit hashes for distinct keys, as xxHash would give (splitmix64).
uint64_t key(uint64_t n) {
  uint64_t z = n + 0x9E3779B97F4A7C15;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EB;
  return z ^ (z >> 31);
}

// Keys that all land in bucket 0 with distinct tags.
uint64_t key_in_bucket_zero(uint64_t n) {
  return (n + 1) << 48;
}

// The most allowed times that fit a closed window of `window_us`.
size_t most_in_any_window(const std::vector<int64_t>& allowed, int64_t window_us) {
  size_t most = 0;
  for (size_t first = 0, last = 0; first < allowed.size(); ++first) {
    while (last < allowed.size() && allowed[last] - allowed[first] <= window_us) ++last;
    most = std::max(most, last - first);
  }
  return most;
}

TEST(RateLimiter, BurstThenOneRequestPerInterval) {
  RateLimiter limiter({.per_second = 100, .burst = 10});
  const uint64_t client = key(1);
  for (uint32_t i = 0; i < 10; ++i) {
    RateDecision d = limiter.take(client, at_us(0));
    ASSERT_TRUE(d.allowed) << i;
    EXPECT_EQ(d.remaining, 9 - i);
  }
  EXPECT_FALSE(limiter.take(client, at_us(0)).allowed);
  // Then a request every millisecond for a second: one in ten gets through, on the 10 ms marks.
  std::vector<int64_t> allowed_ms;
  for (int64_t ms = 1; ms <= 1000; ++ms) {
    if (limiter.take(client, at_us(ms * 1000)).allowed) allowed_ms.push_back(ms);
  }
  ASSERT_EQ(allowed_ms.size(), 100u);
  for (size_t i = 0; i < allowed_ms.size(); ++i) EXPECT_EQ(allowed_ms[i], 10 * int64_t(i + 1));
}

TEST(RateLimiter, NoWindowOfAnyLengthSeesMoreThanBurstPlusRate) {
  // Bursts of 20 at random moments, plus a steady trickle: the boundary of a fixed window would
  // let a burst on each side through; GCRA never does.
  const RateLimitPolicy policy{.per_second = 100, .burst = 10};
  const int64_t interval_us = 10'000;
  RateLimiter limiter(policy);
  std::mt19937_64 random(7);
  std::vector<int64_t> sent;
  for (int i = 0; i < 300; ++i) {
    int64_t moment = std::uniform_int_distribution<int64_t>(0, 10'000'000)(random);
    sent.insert(sent.end(), 20, moment);
  }
  for (int64_t us = 0; us < 10'000'000; us += 1'000) sent.push_back(us);
  std::sort(sent.begin(), sent.end());
  std::vector<int64_t> allowed;
  for (int64_t us : sent) {
    if (limiter.take(key(2), at_us(us)).allowed) allowed.push_back(us);
  }
  for (int64_t window_us : {0, 1, 999, 9'999, 10'000, 50'000, 99'999, 1'000'000, 2'500'001}) {
    EXPECT_LE(most_in_any_window(allowed, window_us),
              size_t(policy.burst + window_us / interval_us))
        << window_us;
  }
  // Sent this densely, the client gets the whole bound: the limit is exact, not just safe.
  EXPECT_EQ(most_in_any_window(allowed, 1'000'000), policy.burst + 100u);
}

TEST(RateLimiter, RetryAfterAndResetSayWhenToComeBack) {
  RateLimiter limiter({.per_second = 100, .burst = 10});
  const uint64_t client = key(3);
  RateDecision first = limiter.take(client, at_us(0));
  EXPECT_TRUE(first.allowed);
  EXPECT_EQ(first.remaining, 9u);
  EXPECT_EQ(first.retry_after, Micros(0));
  EXPECT_EQ(first.reset, milliseconds(10));
  for (int i = 0; i < 9; ++i) limiter.take(client, at_us(0));

  RateDecision refused = limiter.take(client, at_us(0));
  EXPECT_FALSE(refused.allowed);
  EXPECT_EQ(refused.remaining, 0u);
  EXPECT_EQ(refused.retry_after, milliseconds(10));
  EXPECT_EQ(refused.reset, milliseconds(100));

  refused = limiter.take(client, at_us(4'000));
  EXPECT_FALSE(refused.allowed);
  EXPECT_EQ(refused.retry_after, milliseconds(6));
  EXPECT_EQ(refused.reset, milliseconds(96));

  RateDecision back = limiter.take(client, at_us(10'000));  // exactly when retry_after said
  EXPECT_TRUE(back.allowed);
  EXPECT_EQ(back.remaining, 0u);
  EXPECT_EQ(back.reset, milliseconds(100));

  RateDecision rested = limiter.take(client, at_us(110'000));  // exactly when reset said
  EXPECT_TRUE(rested.allowed);
  EXPECT_EQ(rested.remaining, 9u);
}

TEST(RateLimiter, IntervalsRoundUpToWholeMicroseconds) {
  RateLimiter limiter({.per_second = 3, .burst = 1});
  EXPECT_TRUE(limiter.take(key(4), at_us(0)).allowed);
  RateDecision refused = limiter.take(key(4), at_us(0));
  EXPECT_FALSE(refused.allowed);
  EXPECT_EQ(refused.retry_after, Micros(333'334));
  EXPECT_FALSE(limiter.take(key(4), at_us(333'333)).allowed);
  EXPECT_TRUE(limiter.take(key(4), at_us(333'334)).allowed);
}

TEST(RateLimiter, IdleKeysGiveTheirWordsUpWithoutEviction) {
  RateLimiter limiter({.per_second = 100, .burst = 2}, 8);  // one bucket
  ASSERT_EQ(limiter.words(), 8u);
  for (uint64_t n = 0; n < 8; ++n)
    EXPECT_TRUE(limiter.take(key_in_bucket_zero(n), at_us(0)).allowed);
  EXPECT_EQ(limiter.evictions(), 0u);

  // 10 ms later all eight have their full burst back: their words are free for other keys.
  for (uint64_t n = 8; n < 16; ++n) {
    EXPECT_TRUE(limiter.take(key_in_bucket_zero(n), at_us(10'000)).allowed);
    EXPECT_TRUE(limiter.take(key_in_bucket_zero(n), at_us(10'000)).allowed);
    EXPECT_FALSE(limiter.take(key_in_bucket_zero(n), at_us(10'000)).allowed);
  }
  EXPECT_EQ(limiter.evictions(), 0u);

  // All eight words busy: a ninth key evicts the one nearest to idle and is let in.
  EXPECT_TRUE(limiter.take(key_in_bucket_zero(20), at_us(15'000)).allowed);
  EXPECT_EQ(limiter.evictions(), 1u);
}

TEST(RateLimiter, FloodOfDistinctKeysKeepsMemoryFixedAndAHotKeyLimited) {
  // A million distinct keys, one request each, 10 µs apart, while a hot key sends every
  // millisecond. At 1/s each flood key stays busy for a second, ~12 for each 8-word bucket, so
  // most of them evict. The hot key's TAT stays far ahead of any flood key's (now + T), so
  // eviction never picks it: it gets exactly what it gets alone.
  const RateLimitPolicy policy{.per_second = 1, .burst = 10};
  const uint64_t hot = key(~uint64_t{0});
  RateLimiter alone(policy);
  int hot_alone = 0;
  for (int64_t us = 0; us < 10'000'000; us += 1'000)
    hot_alone += alone.take(hot, at_us(us)).allowed;
  EXPECT_EQ(hot_alone, 10 + 9);  // burst + 9.999 s of 1 s intervals

  RateLimiter flooded(policy);
  const size_t heap_before = mallinfo2().uordblks;
  int hot_flooded = 0;
  int flood_refused = 0;
  for (uint64_t n = 0; n < 1'000'000; ++n) {
    const int64_t us = static_cast<int64_t>(n) * 10;
    if (n % 100 == 0) hot_flooded += flooded.take(hot, at_us(us)).allowed;
    flood_refused += !flooded.take(key(n), at_us(us)).allowed;
  }
  EXPECT_EQ(mallinfo2().uordblks, heap_before);
  EXPECT_EQ(flooded.words(), 65536u);
  EXPECT_GT(flooded.evictions(), 500'000u);
  EXPECT_EQ(flood_refused, 0);
  EXPECT_EQ(hot_flooded, hot_alone);
}

TEST(RateLimiter, FourThreadsOnOneKeyGetExactlyTheBurst) {
  RateLimiter limiter({.per_second = 100, .burst = 10});
  std::atomic<int> allowed{0};
  std::latch start(4);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      start.arrive_and_wait();
      for (int i = 0; i < 100'000; ++i) allowed += limiter.take(key(5), at_us(0)).allowed;
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(allowed.load(), 10);
}

TEST(RateLimiter, FourThreadsOnEightKeysOfOneBucketNeverSplitAKey) {
  // Eight new keys fill the eight words of one bucket from four threads at once. Had two threads
  // put one key in two words, a ninth word would be needed and a key would be evicted.
  RateLimiter limiter({.per_second = 100, .burst = 10}, 8);
  std::atomic<int> allowed[8] = {};
  std::latch start(4);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      start.arrive_and_wait();
      for (int i = 0; i < 20'000; ++i) {
        const uint64_t n = (i + t * 3) % 8;
        allowed[n] += limiter.take(key_in_bucket_zero(n), at_us(0)).allowed;
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (int n = 0; n < 8; ++n) EXPECT_EQ(allowed[n].load(), 10) << n;
  EXPECT_EQ(limiter.evictions(), 0u);
}

TEST(RateLimiter, FourThreadsWithTheirOwnClocksStayWithinTheRate) {
  // Each worker reads its own clock: the four nows interleave out of order. Over 100 ms a key
  // may still get no more than burst + 100 ms / T.
  RateLimiter limiter({.per_second = 100, .burst = 10}, 8);
  std::atomic<int> allowed[8] = {};
  std::latch start(4);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      start.arrive_and_wait();
      for (int64_t us = 0; us <= 100'000; ++us) {
        const uint64_t n = (us + t) % 8;
        allowed[n] += limiter.take(key_in_bucket_zero(n), at_us(us)).allowed;
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (int n = 0; n < 8; ++n) {
    EXPECT_LE(allowed[n].load(), 10 + 10) << n;
    EXPECT_GE(allowed[n].load(), 10) << n;
  }
  EXPECT_EQ(limiter.evictions(), 0u);
}

TEST(RateLimiter, FourWorkersShareOneLimitForAClient) {
  // The proxy's case: 50/s, burst 10, one client's 400 requests over 2 s spread over 4 workers,
  // each with its own clock. One process-wide limit: ~10 + 2 s x 50, not four times that.
  RateLimiter limiter({.per_second = 50, .burst = 10});
  std::atomic<int> allowed{0};
  std::latch start(4);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      start.arrive_and_wait();
      for (int64_t i = 0; i < 100; ++i)
        allowed += limiter.take(key(9), at_us((4 * i + t) * 5'000)).allowed;
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_GE(allowed.load(), 100);
  EXPECT_LE(allowed.load(), 10 + 100);
}

}  // namespace
}  // namespace usher::protect
