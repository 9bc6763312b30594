#include "balance/round_robin.h"

#include <gtest/gtest.h>

namespace usher::balance {
namespace {

BackendSnapshot three() {
  BackendSnapshot s;
  for (const char* a : {"127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"})
    s.backends.push_back({*Address::parse(a), 1});
  return s;
}

TEST(RoundRobin, ExactSequence) {
  RoundRobin rr = RoundRobin::build(three());
  std::vector<uint32_t> picks;
  for (uint64_t ticket = 0; ticket < 7; ++ticket) picks.push_back(rr.pick(ticket).at(0));
  EXPECT_EQ(picks, (std::vector<uint32_t>{0, 1, 2, 0, 1, 2, 0}));
}

TEST(RoundRobin, CandidatesWalkEveryBackendOnce) {
  CandidateOrder order = RoundRobin::build(three()).pick(4);
  ASSERT_EQ(order.size(), 3u);
  EXPECT_EQ(order.at(0), 1u);
  EXPECT_EQ(order.at(1), 2u);
  EXPECT_EQ(order.at(2), 0u);
}

}  // namespace
}  // namespace usher::balance
