#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "balance/algorithms.h"
#include "balance/balancer.h"
#include "balance/picker.h"

namespace usher::balance {
namespace {

BackendSnapshot backends(std::vector<uint32_t> weights) {
  BackendSnapshot s;
  for (size_t i = 0; i < weights.size(); ++i) {
    s.backends.push_back({*Address::parse("10.0." + std::to_string(i / 250) + "." +
                                          std::to_string(i % 250 + 1) + ":80"),
                          weights[i],
                          {},
                          {}});
  }
  return s;
}

std::unique_ptr<Picker> make(const std::string& name, const BackendSnapshot& s,
                             Options options = {}) {
  auto picker = build(name, s, options);
  EXPECT_TRUE(picker.ok()) << name;
  return std::move(*picker);
}

TEST(Algorithms, EveryNameBuildsAndUnknownNamesDoNot) {
  for (const AlgorithmInfo& a : algorithms())
    EXPECT_TRUE(build(a.name, backends({1, 2}), {}).ok()) << a.name;
  EXPECT_FALSE(build("fastest", backends({1}), {}).ok());
  EXPECT_FALSE(build("round-robin", BackendSnapshot{}, {}).ok());
}

TEST(RoundRobin, ExactSequenceAndCandidateOrder) {
  auto rr = make("round-robin", backends({1, 1, 1}));
  LiveState live(3);
  std::vector<uint32_t> picks;
  for (uint64_t t = 0; t < 7; ++t) picks.push_back(rr->pick({t, 0}, live));
  EXPECT_EQ(picks, (std::vector<uint32_t>{0, 1, 2, 0, 1, 2, 0}));
}

TEST(Balancer, CandidatesArePickThenFallbacksWithoutRepeats) {
  auto balancer = std::move(*Balancer::build("round-robin", backends({1, 1, 1}), {}));
  LiveState live(3);
  Candidates first = balancer->candidates(0, 0, 0);  // ticket 0
  Candidates c = balancer->candidates(0, 0, 0);      // ticket 1
  EXPECT_EQ(balancer->next(first, live), 0u);
  EXPECT_EQ(balancer->next(c, live), 1u);
  EXPECT_EQ(balancer->next(c, live), 2u);
  EXPECT_EQ(balancer->next(c, live), 0u);
  // All three failed once: they are tried again in turn.
  EXPECT_EQ(balancer->next(c, live), 1u);
  live[2].healthy.store(false);
  Candidates d = balancer->candidates(0, 0, 0);  // ticket 2 would pick 2, which is down
  EXPECT_EQ(balancer->next(d, live), 0u);
  EXPECT_EQ(balancer->next(d, live), 1u);
}

// max_connections: a backend at its limit is skipped by every algorithm, and with all of them
// there the pick says so (the request then waits in the pool's queue).
TEST(Balancer, EveryAlgorithmSpillsPastABackendAtMaxActive) {
  for (const AlgorithmInfo& a : algorithms()) {
    auto balancer = std::move(*Balancer::build(a.name, backends({1, 1, 1}), {}));
    LiveState live(3);
    live.set_max_active(2);
    for (uint32_t i = 0; i < 2; ++i) ASSERT_TRUE(live.try_begin(1));
    for (uint64_t key = 0; key < 200; ++key) {
      Candidates c = balancer->candidates(key * 0x9e3779b97f4a7c15ULL, key, 0);
      const uint32_t pick = balancer->next(c, live);
      ASSERT_NE(pick, kNoBackend) << a.name;
      EXPECT_NE(pick, 1u) << a.name << " picked the full backend for key " << key;
    }
    for (uint32_t b : {0u, 2u}) {
      for (uint32_t i = 0; i < 2; ++i) ASSERT_TRUE(live.try_begin(b));
    }
    Candidates c = balancer->candidates(7, 7, 0);
    EXPECT_EQ(balancer->next(c, live), kNoBackend) << a.name;
    live.end(2);
    Candidates again = balancer->candidates(7, 7, 0);
    EXPECT_EQ(balancer->next(again, live), 2u) << a.name;
  }
}

TEST(LiveState, TryBeginNeverPassesMaxActiveUnderRacingThreads) {
  LiveState live(1);
  live.set_max_active(3);
  std::atomic<uint32_t> taken{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 100000; ++i) {
        if (!live.try_begin(0)) continue;
        EXPECT_LE(live.active(0), 3u);
        taken.fetch_add(1);
        live.end(0);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(live.active(0), 0u);
  EXPECT_GT(taken.load(), 0u);
  LiveState unlimited(1);
  for (int i = 0; i < 1000; ++i) EXPECT_TRUE(unlimited.try_begin(0));
}

TEST(Balancer, MaglevFallsBackAlongItsTableToWhereKeysMoveWhenABackendLeaves) {
  auto balancer = std::move(*Balancer::build("hash", backends({1, 1, 1, 1, 1}), {}));
  LiveState live(5);
  std::mt19937_64 rng(7);
  for (int i = 0; i < 2000; ++i) {
    const uint64_t key = rng();
    Candidates c = balancer->candidates(key, 0, 0);
    const uint32_t first = balancer->next(c, live);
    const uint32_t second = balancer->next(c, live);
    EXPECT_NE(first, second);
    // With the first backend down, the same key's pick is the fallback it was given.
    live[first].healthy.store(false);
    Candidates again = balancer->candidates(key, 0, 0);
    EXPECT_EQ(balancer->next(again, live), second);
    live[first].healthy.store(true);
  }
}

TEST(WeightedRoundRobin, SmoothSequenceFor532) {
  auto wrr = make("weighted-round-robin", backends({5, 3, 2}));
  LiveState live(3);
  std::string seq;
  for (uint64_t t = 0; t < 10; ++t) seq += static_cast<char>('a' + wrr->pick({t, 0}, live));
  EXPECT_EQ(seq, "abcaabacba");
}

std::map<uint32_t, int> count_picks(const Picker& p, int n, bool random_keys) {
  std::mt19937_64 rng(42);
  LiveState live(p.size());
  std::map<uint32_t, int> counts;
  for (int i = 0; i < n; ++i)
    counts[p.pick({random_keys ? rng() : static_cast<uint64_t>(i), 0}, live)]++;
  return counts;
}

TEST(Weights, FiveThreeTwoGive50_30_20Percent) {
  // The load-aware algorithms honour weights as capacity (load / weight), not as shares.
  for (const char* name : {"weighted-round-robin", "random"}) {
    auto p = make(name, backends({5, 3, 2}));
    bool random_keys = std::string(name) != "weighted-round-robin";
    auto counts = count_picks(*p, 100'000, random_keys);
    EXPECT_NEAR(counts[0] / 1000.0, 50, 0.5) << name;
    EXPECT_NEAR(counts[1] / 1000.0, 30, 0.5) << name;
    EXPECT_NEAR(counts[2] / 1000.0, 20, 0.5) << name;
  }
}

TEST(LeastConnections, PicksAMinimumPerUnitOfWeight) {
  std::mt19937_64 rng(7);
  auto snapshot = backends({1, 2, 1, 4, 1});
  auto lc = make("least-connections", snapshot);
  LiveState live(5);
  for (int round = 0; round < 1000; ++round) {
    for (uint32_t i = 0; i < 5; ++i) live[i].active.store(static_cast<uint32_t>(rng() % 20));
    uint32_t pick = lc->pick({rng(), 0}, live);
    double cost = (live.active(pick) + 1.0) / snapshot.backends[pick].weight;
    for (uint32_t i = 0; i < 5; ++i)
      EXPECT_LE(cost, (live.active(i) + 1.0) / snapshot.backends[i].weight);
  }
}

TEST(LeastConnections, TiesSpreadRoundRobin) {
  auto lc = make("least-connections", backends({1, 1, 1}));
  LiveState live(3);
  std::vector<uint32_t> picks;
  for (uint64_t t = 0; t < 6; ++t) picks.push_back(lc->pick({t, 0}, live));
  EXPECT_EQ(picks, (std::vector<uint32_t>{0, 1, 2, 0, 1, 2}));
}

TEST(PowerOfTwo, NeverPicksTheMostLoaded) {
  std::mt19937_64 rng(3);
  auto p2c = make("power-of-two", backends({1, 1, 1, 1, 1, 1, 1, 1}));
  LiveState live(8);
  for (uint32_t i = 0; i < 8; ++i)
    live[i].active.store(i * 3);  // distinct loads; 7 is the most loaded
  for (int i = 0; i < 100'000; ++i) EXPECT_NE(p2c->pick({rng(), 0}, live), 7u);
}

TEST(LeastResponseTime, ShiftsTrafficAwayFromASlowingBackendWithinAFewDecayConstants) {
  Options options;
  options.latency_decay_ms = 1000;
  auto lrt = make("least-response-time", backends({1, 1}), options);
  LiveState live(2);
  std::mt19937_64 rng(5);
  double latency[2] = {10, 10};
  auto run = [&](uint64_t from_ms, uint64_t to_ms) {
    int to_first = 0, total = 0;
    for (uint64_t now = from_ms; now < to_ms; now += 5) {
      uint32_t b = lrt->pick({rng(), now}, live);
      live.observe_latency(b, latency[b], now, options.latency_decay_ms);
      to_first += b == 0;
      ++total;
    }
    return static_cast<double>(to_first) / total;
  };
  EXPECT_NEAR(run(0, 5000), 0.5, 0.1);
  latency[0] = 100;                            // backend 0 becomes ten times slower
  EXPECT_LT(run(5000, 5000 + 3 * 1000), 0.2);  // within three decay constants
}

TEST(LeastResponseTime, ANewBackendStartsAtTheMeanEstimate) {
  auto lrt = make("least-response-time", backends({1, 1, 1}));
  LiveState live(3);
  live.observe_latency(0, 10, 1, 10'000);
  live.observe_latency(1, 30, 1, 10'000);
  // Backend 2 has no estimate: charged the mean (20), it beats backend 1 and loses to backend 0.
  EXPECT_EQ(lrt->pick({0, 1}, live), 0u);
  live[0].active.store(2);  // 10 x 3 = 30 > 20
  EXPECT_EQ(lrt->pick({0, 1}, live), 2u);
}

TEST(Maglev, EachOfAHundredBackendsOwnsOnePercentAndARemovalMovesLittleElse) {
  std::vector<uint32_t> weights(100, 1);
  auto full = make("hash", backends(weights));
  auto snapshot = backends(weights);
  BackendSnapshot without = snapshot;
  without.backends.erase(without.backends.begin() + 37);
  auto reduced = make("hash", without);
  LiveState live(100);
  std::mt19937_64 rng(11);
  constexpr int kKeys = 1'000'000;
  std::vector<int> owned(100, 0);
  int moved_beyond = 0;
  for (int k = 0; k < kKeys; ++k) {
    uint64_t key = rng();
    uint32_t before = full->pick({key, 0}, live);
    uint32_t after = reduced->pick({key, 0}, live);
    uint32_t after_original = after >= 37 ? after + 1 : after;
    owned[before]++;
    if (before != 37 && after_original != before) ++moved_beyond;
  }
  for (int n : owned) EXPECT_NEAR(n * 100.0 / kKeys, 1.0, 0.2);
  EXPECT_LE(moved_beyond * 100.0 / kKeys, 1.2);
}

TEST(Maglev, SameKeySameBackendAcrossBuilds) {
  auto a = make("ip-hash", backends({1, 1, 1}));
  auto b = make("ip-hash", backends({1, 1, 1}));
  LiveState live(3);
  for (const char* ip : {"10.1.1.1", "192.168.0.7", "::1"}) {
    EXPECT_EQ(a->pick({hash_key(ip), 0}, live), b->pick({hash_key(ip), 0}, live));
  }
}

TEST(BoundedLoad, NoBackendExceedsCTimesTheMean) {
  Options options;
  options.hash_balance_factor = 1.25;
  auto bounded = make("hash-bounded", backends(std::vector<uint32_t>(10, 1)), options);
  LiveState live(10);
  std::mt19937_64 rng(13);
  uint64_t total = 0;
  for (int i = 0; i < 5000; ++i) {
    // A skewed population: half the requests carry the same hot key.
    uint64_t key = (i % 2) ? hash_key("hot") : rng();
    uint32_t b = bounded->pick({key, 0}, live);
    live.begin(b);
    ++total;
    double mean = static_cast<double>(total) / 10;
    for (uint32_t j = 0; j < 10; ++j) ASSERT_LE(live.active(j), std::ceil(1.25 * mean));
  }
}

TEST(Health, NoAlgorithmPicksAnUnhealthyBackendAndAllDownIsNoBackend) {
  std::mt19937_64 rng(17);
  for (const AlgorithmInfo& a : algorithms()) {
    auto p = make(std::string(a.name), backends({5, 3, 2, 1}));
    LiveState live(4);
    live[1].healthy.store(false);
    live[3].healthy.store(false);
    std::map<uint32_t, int> counts;
    for (int i = 0; i < 2000; ++i) counts[p->pick({rng(), 0}, live)]++;
    EXPECT_EQ(counts.count(1) + counts.count(3), 0u) << a.name;
    EXPECT_EQ(counts[0] + counts[2], 2000) << a.name;
    live[0].healthy.store(false);
    live[2].healthy.store(false);
    EXPECT_EQ(p->pick({rng(), 0}, live), kNoBackend) << a.name;
  }
}

TEST(Health, PanicMakesEveryBackendUsable) {
  LiveState live(3);
  live[0].healthy.store(false);
  live[1].healthy.store(false);
  EXPECT_EQ(live.healthy_count(), 1u);
  EXPECT_FALSE(live.usable(0));
  live.set_panic(true);
  for (uint32_t i = 0; i < 3; ++i) EXPECT_TRUE(live.usable(i));
}

TEST(Health, RoundRobinSharesADeadBackendsTurnsEvenly) {
  auto rr = make("round-robin", backends({1, 1, 1, 1}));
  LiveState live(4);
  live[1].healthy.store(false);
  std::map<uint32_t, int> counts;
  for (uint64_t t = 0; t < 30'000; ++t) counts[rr->pick({t, 0}, live)]++;
  for (uint32_t b : {0u, 2u, 3u}) EXPECT_NEAR(counts[b], 10'000, 300) << b;
}

TEST(Health, HashedKeysOfHealthyBackendsStayWhileOneIsDown) {
  auto p = make("hash", backends(std::vector<uint32_t>(10, 1)));
  LiveState live(10);
  std::mt19937_64 rng(19);
  std::vector<uint64_t> keys(10'000);
  std::vector<uint32_t> before;
  for (uint64_t& k : keys) before.push_back(p->pick({k = rng(), 0}, live));
  live[4].healthy.store(false);
  for (size_t i = 0; i < keys.size(); ++i) {
    uint32_t now = p->pick({keys[i], 0}, live);
    if (before[i] != 4) {
      EXPECT_EQ(now, before[i]);
    }
    EXPECT_NE(now, 4u);
  }
}

TEST(SlowStart, WeightRampsLinearlyFromFivePercent) {
  auto snapshot = backends({10, 10});
  LiveState live(2);
  live[1].serving_since_ms.store(1000);
  EXPECT_DOUBLE_EQ(effective_weight(snapshot, live, 1, 1000, 10'000), 0.5);  // the 5 % floor
  EXPECT_DOUBLE_EQ(effective_weight(snapshot, live, 1, 6000, 10'000), 5.0);  // half way
  EXPECT_DOUBLE_EQ(effective_weight(snapshot, live, 1, 11'000, 10'000), 10.0);
  EXPECT_DOUBLE_EQ(effective_weight(snapshot, live, 0, 1000, 10'000), 10.0);  // serving all along
  EXPECT_DOUBLE_EQ(effective_weight(snapshot, live, 1, 1000, 0), 10.0);       // slow start off
}

TEST(SlowStart, ARecoveredBackendIsNotFloodedByLeastConnections) {
  Options options;
  options.slow_start_ms = 10'000;
  auto lc = make("least-connections", backends({1, 1}), options);
  LiveState live(2);
  live[0].active.store(10);
  live[1].serving_since_ms.store(1000);  // just back, idle
  // At the start of its ramp, 1 request on it costs as much as 20 on the other.
  live[1].active.store(1);
  EXPECT_EQ(lc->pick({0, 1500}, live), 0u);
  EXPECT_EQ(lc->pick({0, 11'000}, live), 1u);  // ramp over: it is the less loaded
}

}  // namespace
}  // namespace usher::balance
