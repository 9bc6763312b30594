#include "net/timer_wheel.h"

#include <gtest/gtest.h>

#include <vector>

namespace usher::net {
namespace {

std::vector<TimerEntry*> fired;

void record(TimerEntry* e) {
  fired.push_back(e);
}

TEST(TimerWheel, FiresInTimeAndNotBefore) {
  fired.clear();
  TimerWheel wheel(1000);
  TimerEntry soon, later, far;
  soon.fire = later.fire = far.fire = record;
  wheel.arm(soon, 1050);
  wheel.arm(later, 1500);
  wheel.arm(far, 1000 + 60'000);  // beyond one turn of the wheel
  wheel.advance(1040);
  EXPECT_TRUE(fired.empty());
  wheel.advance(1060);
  ASSERT_EQ(fired.size(), 1u);
  EXPECT_EQ(fired[0], &soon);
  wheel.advance(20'000);
  ASSERT_EQ(fired.size(), 2u);
  EXPECT_EQ(fired[1], &later);
  for (uint64_t t = 20'000; t <= 61'000; t += 10) wheel.advance(t);
  ASSERT_EQ(fired.size(), 3u);
  EXPECT_EQ(fired[2], &far);
  EXPECT_TRUE(wheel.empty());
}

TEST(TimerWheel, AnExpiryInsideTheCurrentTickFiresOnTheNextTick) {
  fired.clear();
  TimerWheel wheel(1000);
  TimerEntry e;
  e.fire = record;
  wheel.arm(e, 1015);  // mid-tick: must not wait for the wheel's next turn
  wheel.advance(1012);
  EXPECT_TRUE(fired.empty());
  wheel.advance(1020);
  ASSERT_EQ(fired.size(), 1u);
}

TEST(TimerWheel, CancelledEntriesNeverFire) {
  fired.clear();
  TimerWheel wheel(0);
  TimerEntry a, b;
  a.fire = b.fire = record;
  wheel.arm(a, 100);
  wheel.arm(b, 100);
  wheel.cancel(a);
  EXPECT_FALSE(a.armed());
  wheel.advance(200);
  ASSERT_EQ(fired.size(), 1u);
  EXPECT_EQ(fired[0], &b);
  EXPECT_TRUE(wheel.empty());
}

}  // namespace
}  // namespace usher::net
