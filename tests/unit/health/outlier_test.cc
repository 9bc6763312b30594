#include "health/outlier.h"

#include <gtest/gtest.h>

namespace usher::health {
namespace {

config::Outlier rule() {
  config::Outlier r;
  r.consecutive_failures = 3;
  r.base_ejection = Millis(1000);
  r.max_ejection_percent = 50;
  return r;
}

TEST(Outlier, AStreakOfFailuresEjectsForLongerEachTime) {
  const config::Outlier r = rule();
  const Outlier outlier(r);
  balance::BackendLive b;
  EXPECT_FALSE(outlier.observe(b, true));
  EXPECT_FALSE(outlier.observe(b, true));
  EXPECT_FALSE(outlier.observe(b, false));  // a success breaks the streak
  EXPECT_FALSE(outlier.observe(b, true));
  EXPECT_FALSE(outlier.observe(b, true));
  ASSERT_TRUE(outlier.observe(b, true));
  auto first = outlier.eject(b, 0, 4, 10'000);
  ASSERT_TRUE(first);
  EXPECT_EQ(first->until_ms, 11'000u);
  EXPECT_EQ(first->times, 1u);
  EXPECT_FALSE(b.healthy.load());
  EXPECT_EQ(b.consecutive_failures.load(), 0u);
  // Active checks bring it back (they clear the ejection); the next streak ejects for twice as
  // long.
  b.ejected_until_ms.store(0);
  b.healthy.store(true);
  for (int i = 0; i < 2; ++i) EXPECT_FALSE(outlier.observe(b, true));
  ASSERT_TRUE(outlier.observe(b, true));
  auto second = outlier.eject(b, 0, 4, 20'000);
  ASSERT_TRUE(second);
  EXPECT_EQ(second->until_ms, 22'000u);
  EXPECT_EQ(second->times, 2u);
}

TEST(Outlier, NeverEjectsMoreThanTheAllowedShare) {
  const config::Outlier r = rule();
  const Outlier outlier(r);
  balance::BackendLive b;
  EXPECT_FALSE(outlier.eject(b, 2, 4, 0));  // three of four ejected would pass 50 %
  EXPECT_TRUE(b.healthy.load());
  EXPECT_TRUE(outlier.eject(b, 1, 4, 0));
}

TEST(Outlier, OnlyOneOfRacingWorkersEjects) {
  const config::Outlier r = rule();
  const Outlier outlier(r);
  balance::BackendLive b;
  EXPECT_TRUE(outlier.eject(b, 0, 4, 5));
  EXPECT_FALSE(outlier.eject(b, 0, 4, 5));
  EXPECT_EQ(b.ejections.load(), 1u);
}

}  // namespace
}  // namespace usher::health
