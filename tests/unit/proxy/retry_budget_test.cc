#include "proxy/retry_budget.h"

#include <gtest/gtest.h>

namespace usher::proxy {
namespace {

TEST(RetryBudget, RetriesAreAShareOfRequestsPlusAFloorPerSecond) {
  RetryBudget budget(0.2, 10);
  uint64_t now = 1000;
  int retries = 0;
  for (int request = 0; request < 1000; ++request) {
    budget.on_request();
    while (budget.try_spend(now)) ++retries;
  }
  EXPECT_EQ(retries, 200 + 10);  // 20 % of 1000 requests, plus the floor it starts with
  now += 2000;                   // two quiet seconds earn the floor twice
  int later = 0;
  while (budget.try_spend(now)) ++later;
  EXPECT_EQ(later, 20);
}

TEST(RetryBudget, SavesForALaterBurstButNotWithoutBound) {
  RetryBudget budget(0.2, 0);
  for (int request = 0; request < 1'000'000; ++request) budget.on_request();
  int burst = 0;
  while (budget.try_spend(1)) ++burst;
  EXPECT_EQ(burst, 1000);
}

}  // namespace
}  // namespace usher::proxy
