#include "sim/quantiles.h"

#include <gtest/gtest.h>

#include <random>

namespace usher::sim {
namespace {

TEST(Quantiles, ExactWhileTheSamplesFit) {
  Quantiles q(1000);
  for (int i = 999; i >= 0; --i) q.add(i / 1000.0);
  EXPECT_DOUBLE_EQ(q.at(0.5), 0.5);
  EXPECT_DOUBLE_EQ(q.at(0.99), 0.99);
  EXPECT_DOUBLE_EQ(q.at(1.0), 0.999);
  EXPECT_EQ(q.count(), 1000u);
}

// Past the limit the samples go to a histogram: every quantile within 0.1 % of the exact one.
TEST(Quantiles, WithinATenthOfAPercentOnceFolded) {
  Quantiles exact(1u << 20), folded(1000);
  std::mt19937_64 rng(7);
  std::lognormal_distribution<double> latency(std::log(0.05), 1.2);
  for (int i = 0; i < 200'000; ++i) {
    const double v = latency(rng);
    exact.add(v);
    folded.add(v);
  }
  for (double q : {0.01, 0.1, 0.5, 0.9, 0.99, 0.999}) {
    EXPECT_NEAR(folded.at(q) / exact.at(q), 1.0, 0.001) << q;
  }
}

TEST(Quantiles, EmptyIsZeroAndTinyValuesStayTiny) {
  Quantiles q(1);
  EXPECT_EQ(q.at(0.5), 0);
  q.add(0);
  q.add(1e-9);
  q.add(2e-9);
  EXPECT_LT(q.at(0.5), 2e-6);
}

}  // namespace
}  // namespace usher::sim
