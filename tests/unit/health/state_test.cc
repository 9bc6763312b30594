#include "health/state.h"

#include <gtest/gtest.h>

namespace usher::health {
namespace {

TEST(HealthState, FallsAfterFallFailuresAndRisesAfterRiseSuccesses) {
  HealthState s(3, 3);
  EXPECT_TRUE(s.healthy());
  EXPECT_FALSE(s.observe(false));
  EXPECT_EQ(s.streak(), 1u);
  EXPECT_FALSE(s.observe(false));
  EXPECT_TRUE(s.observe(false));  // 3/3: removed
  EXPECT_FALSE(s.healthy());
  EXPECT_FALSE(s.observe(true));
  EXPECT_FALSE(s.observe(true));
  EXPECT_TRUE(s.observe(true));  // 3/3: back
  EXPECT_TRUE(s.healthy());
}

TEST(HealthState, ABrokenStreakStartsOver) {
  HealthState s(2, 3);
  s.observe(false);
  s.observe(false);
  s.observe(true);  // streak broken
  EXPECT_EQ(s.streak(), 0u);
  EXPECT_FALSE(s.observe(false));
  EXPECT_FALSE(s.observe(false));
  EXPECT_TRUE(s.observe(false));
  s.observe(true);
  s.observe(false);  // rise streak broken
  EXPECT_FALSE(s.observe(true));
  EXPECT_TRUE(s.observe(true));
}

TEST(HealthState, AJoiningBackendIsDownUntilOnePassThenRisesAndFallsAsUsual) {
  HealthState s(3, 2);
  s.await_first_check();
  EXPECT_FALSE(s.healthy());
  EXPECT_FALSE(s.observe(false));  // still down: it never served
  EXPECT_EQ(s.needed(), 1u);
  EXPECT_TRUE(s.observe(true));
  EXPECT_TRUE(s.healthy());
  EXPECT_FALSE(s.observe(false));
  EXPECT_TRUE(s.observe(false));  // down after `fall`
  EXPECT_EQ(s.needed(), 3u);      // and back only after `rise`
  EXPECT_FALSE(s.observe(true));
  EXPECT_FALSE(s.observe(true));
  EXPECT_TRUE(s.observe(true));
}

TEST(HealthState, RiseAndFallOfOneFlipAtOnce) {
  HealthState s(1, 1);
  EXPECT_TRUE(s.observe(false));
  EXPECT_TRUE(s.observe(true));
}

}  // namespace
}  // namespace usher::health
