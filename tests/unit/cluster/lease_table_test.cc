// A worker's share of a cluster-wide rate limit: what it spends locally, when it asks Redis,
// and what it gives back.
#include "cluster/lease_table.h"

#include <gtest/gtest.h>

#include "cluster/spsc_ring.h"

namespace usher::cluster {
namespace {

using Verdict = LeaseTable::Verdict;

struct CountingWaiter : LeaseWaiter {
  void wake() override { ++woken; }
  int woken = 0;
};

TEST(LeasePolicy, BatchIsAtMostHalfTheBurstAndATenthOfASecondOfTheRate) {
  const LeasePolicy fast(1000, 1000);
  EXPECT_EQ(fast.interval_us, 1000u);
  EXPECT_EQ(fast.batch, 100u);         // 0.1 s at 1000/s
  EXPECT_EQ(fast.lease_us, 100'000u);  // as long as the batch takes at the full rate
  const LeasePolicy small_burst(100, 10);
  EXPECT_EQ(small_burst.batch, 5u);
  EXPECT_EQ(small_burst.lease_us, 50'000u);
  const LeasePolicy slow(1.0 / 60, 5);  // 1/m: one at a time, held as long as the minute lasts
  EXPECT_EQ(slow.batch, 1u);
  EXPECT_EQ(slow.lease_us, 60'000'000u);
  EXPECT_EQ(LeasePolicy(100, 1).batch, 1u);
}

TEST(LeaseTable, AsksOnceThenSpendsTheLeaseLocally) {
  LeaseTable table(LeasePolicy(100, 10), 16);
  EXPECT_EQ(table.peek(7, 0), Verdict::kAsk);
  const LeaseTable::Decision first = table.take(7, 0);
  ASSERT_EQ(first.verdict, Verdict::kAsk);
  EXPECT_EQ(first.ask.key, 7u);
  EXPECT_EQ(first.ask.want, 5u);
  EXPECT_EQ(first.ask.give_back, 0u);
  // A second request while the ask is out waits for it rather than asking again.
  EXPECT_EQ(table.take(7, 10).verdict, Verdict::kWait);
  CountingWaiter waiter;
  table.add_waiter(7, waiter);
  const auto woken = table.answer({.key = 7, .granted = 3, .wait_us = 0}, 100);
  ASSERT_EQ(woken.size(), 1u);
  EXPECT_EQ(woken[0], &waiter);
  for (int spent = 0; spent < 3; ++spent) EXPECT_EQ(table.take(7, 200).verdict, Verdict::kAllow);
  EXPECT_EQ(table.take(7, 300).verdict, Verdict::kAsk);
}

TEST(LeaseTable, ARefusedKeyStaysRefusedUntilRedisSaidWithoutAsking) {
  LeaseTable table(LeasePolicy(100, 10), 16);
  ASSERT_EQ(table.take(1, 0).verdict, Verdict::kAsk);
  table.answer({.key = 1, .granted = 0, .wait_us = 8'000}, 1'000);
  for (uint64_t t : {1'000u, 5'000u, 8'999u}) {
    const LeaseTable::Decision d = table.take(1, t);
    EXPECT_EQ(d.verdict, Verdict::kRefuse);
    EXPECT_EQ(d.retry_after_us, 9'000 - t);
  }
  EXPECT_EQ(table.take(1, 9'000).verdict, Verdict::kAsk);
}

TEST(LeaseTable, AnEndedLeaseGivesItsUnspentAllowanceBackWithTheNextAsk) {
  LeaseTable table(LeasePolicy(100, 10), 16);
  table.take(3, 0);
  table.answer({.key = 3, .granted = 5, .wait_us = 0}, 0);
  EXPECT_EQ(table.take(3, 1).verdict, Verdict::kAllow);
  // 50 ms later the lease has ended with 4 unspent: spending them now could exceed the limit.
  const LeaseTable::Decision d = table.take(3, 50'000);
  ASSERT_EQ(d.verdict, Verdict::kAsk);
  EXPECT_EQ(d.ask.give_back, 4u);
}

TEST(LeaseTable, PeekDecidesAsTakeWouldAndChangesNothing) {
  LeaseTable table(LeasePolicy(100, 10), 16);
  table.take(9, 0);
  EXPECT_EQ(table.peek(9, 1), Verdict::kWait);
  table.answer({.key = 9, .granted = 1, .wait_us = 0}, 0);
  EXPECT_EQ(table.peek(9, 1), Verdict::kAllow);
  EXPECT_EQ(table.peek(9, 1), Verdict::kAllow);
  EXPECT_EQ(table.take(9, 1).verdict, Verdict::kAllow);
  EXPECT_EQ(table.peek(9, 1), Verdict::kAsk);
}

TEST(LeaseTable, AnAbandonedAskWakesItsWaitersAndAsksAfresh) {
  LeaseTable table(LeasePolicy(100, 10), 16);
  table.take(4, 0);
  CountingWaiter a, b;
  table.add_waiter(4, a);
  table.add_waiter(4, b);
  table.remove_waiter(4, b);  // b stopped waiting
  const auto woken = table.abandon(4);
  ASSERT_EQ(woken.size(), 1u);
  EXPECT_EQ(woken[0], &a);
  EXPECT_EQ(table.take(4, 1).verdict, Verdict::kAsk);
}

TEST(LeaseTable, AFullTableForgetsIdleKeysAndSaysFullWhenAllAreInUse) {
  LeaseTable table(LeasePolicy(100, 10), 2);
  table.take(1, 0);  // asking: in use
  table.take(2, 0);
  table.answer({.key = 2, .granted = 5, .wait_us = 0}, 0);  // a live lease: in use
  EXPECT_EQ(table.peek(3, 10), Verdict::kFull);
  EXPECT_EQ(table.take(3, 10).verdict, Verdict::kFull);
  // Once key 2's lease has ended, it is idle and makes room (at the next sweep: at most one a
  // millisecond).
  EXPECT_EQ(table.take(3, 60'000).verdict, Verdict::kAsk);
  EXPECT_EQ(table.size(), 2u);
}

TEST(SpscRing, KeepsOrderAndRefusesWhenFull) {
  SpscRing<int> ring(4);
  for (int i = 0; i < 4; ++i) EXPECT_TRUE(ring.push(i));
  EXPECT_FALSE(ring.push(99));
  for (int i = 0; i < 4; ++i) EXPECT_EQ(ring.pop(), i);
  EXPECT_EQ(ring.pop(), std::nullopt);
  EXPECT_TRUE(ring.push(5));
  EXPECT_EQ(ring.pop(), 5);
}

}  // namespace
}  // namespace usher::cluster
