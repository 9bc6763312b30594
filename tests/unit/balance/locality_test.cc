#include "balance/locality.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "balance/balancer.h"

namespace usher::balance {
namespace {

const Locality kHere{"a", "r1"};

// Two backends in our zone a, two in zone b of our region, two in zone c of region r2.
BackendSnapshot three_zones(size_t per_zone = 2) {
  BackendSnapshot s;
  const char* zones[][2] = {{"a", "r1"}, {"b", "r1"}, {"c", "r2"}};
  for (const auto& [zone, region] : zones) {
    for (size_t i = 0; i < per_zone; ++i) {
      const auto n = s.backends.size() + 1;
      s.backends.push_back(
          {*Address::parse("10.0.0." + std::to_string(n) + ":80"), 1, zone, region});
    }
  }
  return s;
}

Options here() {
  Options options;
  options.locality = kHere;
  return options;
}

TierLoads loads(std::vector<std::pair<double, double>> weights) {
  TierLoads t;
  for (size_t i = 0; i < weights.size(); ++i) {
    t[i].weight = weights[i].first;
    t[i].healthy_weight = weights[i].second;
  }
  compute_shares(t);
  return t;
}

TEST(Locality, TiersByZoneThenRegion) {
  auto info = [](std::string zone, std::string region) {
    return BackendInfo{*Address::parse("10.0.0.1:80"), 1, std::move(zone), std::move(region)};
  };
  EXPECT_EQ(tier_of(info("a", "r1"), kHere), Tier::kZone);
  EXPECT_EQ(tier_of(info("a", ""), kHere), Tier::kZone);     // the zone alone says it
  EXPECT_EQ(tier_of(info("a", "r2"), kHere), Tier::kOther);  // another region's zone "a"
  EXPECT_EQ(tier_of(info("b", "r1"), kHere), Tier::kRegion);
  EXPECT_EQ(tier_of(info("", "r1"), kHere), Tier::kRegion);
  EXPECT_EQ(tier_of(info("b", ""), kHere), Tier::kOther);  // region unknown: not ours
  EXPECT_EQ(tier_of(info("", ""), kHere), Tier::kOther);
}

TEST(Locality, SharesFollowHealthyCapacityTimesOverprovisioning) {
  auto shares = [](const TierLoads& t) {
    return std::vector<double>{t[0].share, t[1].share, t[2].share};
  };
  auto near = [](std::vector<double> got, std::vector<double> want) {
    for (size_t i = 0; i < 3; ++i) EXPECT_NEAR(got[i], want[i], 1e-9) << i;
  };
  near(shares(loads({{2, 2}, {2, 2}, {2, 2}})), {1, 0, 0});
  // 1.4 x 3/4 > 1: losing a quarter of the zone spills nothing.
  near(shares(loads({{4, 3}, {2, 2}, {2, 2}})), {1, 0, 0});
  near(shares(loads({{2, 1}, {2, 2}, {2, 2}})), {0.7, 0.3, 0});
  near(shares(loads({{2, 0}, {2, 2}, {2, 2}})), {0, 1, 0});
  near(shares(loads({{2, 0}, {2, 1}, {2, 2}})), {0, 0.7, 0.3});
  // Too little healthy anywhere: 0.35 + 0.35 scaled up to 1.
  near(shares(loads({{4, 1}, {4, 1}, {2, 0}})), {0.5, 0.5, 0});
  // Nothing healthy: the first tier keeps the traffic (its pick finds nobody, as without tiers).
  near(shares(loads({{0, 0}, {2, 0}, {2, 0}})), {0, 1, 0});
}

// The exact sequence for ten tickets with one of the two local backends down: the zone takes 7
// (golden-ratio points below 0.7), the region's round-robin the other 3.
TEST(Locality, RoundRobinSequenceWithOneLocalBackendDown) {
  auto picker = std::move(*build("round-robin", three_zones(), here()));
  LiveState live(6);
  live[0].healthy = false;
  std::vector<uint32_t> picks;
  for (uint64_t t = 0; t < 10; ++t) picks.push_back(picker->pick({t, 0}, live));
  EXPECT_EQ(picks, (std::vector<uint32_t>{1, 1, 1, 3, 1, 1, 2, 1, 2, 1}));
}

// Every algorithm: all local while the zone is healthy, about 70 % local with one of its two
// backends down, none with both down, all local again once they recover.
TEST(Locality, EveryAlgorithmSpillsPartlyThenWhollyAndComesBack) {
  constexpr int kPicks = 20'000;
  for (const AlgorithmInfo& a : algorithms()) {
    auto picker = std::move(*build(a.name, three_zones(), here()));
    LiveState live(6);
    auto in_zone = [&](uint32_t first_slot) {
      std::mt19937_64 rng(7);
      int count = 0;
      for (int i = 0; i < kPicks; ++i) {
        const uint64_t key = a.key == KeySource::kTicket ? static_cast<uint64_t>(i) : rng();
        const uint32_t b = picker->pick({key, 0}, live);
        EXPECT_TRUE(live.usable(b)) << a.name;
        count += b == first_slot || b == first_slot + 1;
      }
      return static_cast<double>(count) / kPicks;
    };
    EXPECT_EQ(in_zone(0), 1.0) << a.name;
    live[0].healthy = false;
    EXPECT_NEAR(in_zone(0), 0.7, 0.02) << a.name;
    EXPECT_NEAR(in_zone(2), 0.3, 0.02) << a.name;
    live[1].healthy = false;
    EXPECT_EQ(in_zone(2), 1.0) << a.name;
    live[0].healthy = true;
    live[1].healthy = true;
    EXPECT_EQ(in_zone(0), 1.0) << a.name;
  }
}

// A hashed client keeps its backend through a spill unless its key is among the spilled
// fraction; those go to the next tier, never to another backend of the failing zone.
TEST(Locality, HashedKeysMoveOnlyByTheSpill) {
  auto picker = std::move(*build("hash", three_zones(), here()));
  LiveState live(6);
  std::mt19937_64 rng(11);
  std::vector<uint64_t> keys(10'000);
  for (uint64_t& k : keys) k = rng();
  std::vector<uint32_t> before;
  for (uint64_t k : keys) before.push_back(picker->pick({k, 0}, live));
  live[0].healthy = false;
  int kept = 0, on_one = 0;
  for (size_t i = 0; i < keys.size(); ++i) {
    const uint32_t now = picker->pick({keys[i], 0}, live);
    if (before[i] != 1) continue;
    ++on_one;
    kept += now == 1;
    if (now != 1) {
      EXPECT_TRUE(now == 2 || now == 3) << now;
    }
  }
  EXPECT_NEAR(static_cast<double>(kept) / on_one, 0.7, 0.03);
}

// Retries stay in the chosen tier first, then go on to the next.
TEST(Locality, FallbacksFinishTheTierBeforeTheNext) {
  auto balancer = std::move(*Balancer::build("round-robin", three_zones(), here()));
  LiveState live(6);
  Candidates c = balancer->candidates(0, 0, 0);  // ticket 0: the zone, its backend 0
  EXPECT_EQ(balancer->next(c, live), 0u);
  EXPECT_EQ(balancer->next(c, live), 1u);
  EXPECT_EQ(balancer->next(c, live), 2u);
  EXPECT_EQ(balancer->next(c, live), 3u);
  EXPECT_EQ(balancer->next(c, live), 4u);
  EXPECT_EQ(balancer->next(c, live), 5u);
}

TEST(Locality, TierLoadsCountMembersAndServingWeight) {
  auto balancer = std::move(*Balancer::build("least-connections", three_zones(), here()));
  LiveState live(6);
  live[0].healthy = false;
  live[5].admin_state = kRemoved;  // no longer a member: no capacity missing either
  const auto t = balancer->tier_loads(live);
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ((*t)[0].backends, 2u);
  EXPECT_EQ((*t)[0].healthy_weight, 1);
  EXPECT_NEAR((*t)[0].share, 0.7, 1e-9);
  EXPECT_EQ((*t)[2].backends, 1u);
  EXPECT_EQ((*t)[2].weight, 1);
  // Panic serves every backend, healthy or not, and locality stops choosing: the tiers take
  // traffic by weight (2 : 2 : 1 of the members), not a dead zone all of it.
  live[1].healthy = false;
  live.set_panic(true);
  const auto panicked = balancer->tier_loads(live);
  EXPECT_NEAR(panicked->at(0).share, 0.4, 1e-9);
  EXPECT_NEAR(panicked->at(1).share, 0.4, 1e-9);
  EXPECT_NEAR(panicked->at(2).share, 0.2, 1e-9);
  EXPECT_FALSE(Balancer::build("least-connections", three_zones(), {}).value()->tier_loads(live));
}

// A weighted zone: shares come from weights, and the algorithm within the tier honours them.
TEST(Locality, WeightsCountInCapacityAndWithinTheTier) {
  BackendSnapshot s = three_zones();
  s.backends[0].weight = 3;  // the zone: 3 + 1
  auto picker = std::move(*build("weighted-round-robin", s, here()));
  LiveState live(6);
  int counts[6] = {};
  for (uint64_t t = 0; t < 4000; ++t) ++counts[picker->pick({t, 0}, live)];
  EXPECT_EQ(counts[0], 3000);
  EXPECT_EQ(counts[1], 1000);
  live[0].healthy = false;  // 1.4 x 1/4 = 35 % stays in the zone
  for (int& c : counts) c = 0;
  for (uint64_t t = 0; t < 4000; ++t) ++counts[picker->pick({t, 0}, live)];
  EXPECT_NEAR(counts[1], 1400, 40);
  EXPECT_NEAR(counts[2] + counts[3], 2600, 40);
}

}  // namespace
}  // namespace usher::balance
