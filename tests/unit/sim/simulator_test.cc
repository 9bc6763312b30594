#include <gtest/gtest.h>

#include "sim/simulator.h"

namespace usher::sim {
namespace {

Scenario crash(double detect_s) {
  Scenario s;
  s.requests = 20'000;
  s.arrival_rate = 1000;
  s.duration = {Distribution::Kind::kConstant, 0.001};
  s.servers.assign(3, Server{});
  s.events = {{5.0, 1, false}};
  s.detect_s = detect_s;
  return s;
}

// A crashed server stays in the balancer until health checks notice, as in the proxy: until
// then its picks are refused and go on to the next candidate, and no arrival is lost.
TEST(Simulator, ACrashIsSeenOnlyAfterTheHealthCheckDelay) {
  for (const char* algorithm : {"round-robin", "least-connections", "hash", "random"}) {
    auto slow = simulate(crash(2.0), algorithm);
    ASSERT_TRUE(slow.ok()) << slow.error().message;
    auto instant = simulate(crash(0.0), algorithm);
    ASSERT_TRUE(instant.ok());
    EXPECT_GT(slow->retries, 100u) << algorithm;  // about a third of 2 s x 1000 requests/s
    EXPECT_EQ(instant->retries, 0u) << algorithm;
    // Only the crashed server's requests in flight are lost (at most its concurrency).
    EXPECT_LE(slow->dropped, 8u) << algorithm;
    EXPECT_EQ(slow->servers[0].served + slow->servers[1].served + slow->servers[2].served,
              20'000u - slow->dropped)
        << algorithm;
  }
}

TEST(Simulator, ARefusedRequestIsDroppedOnlyWhenEveryAttemptIsRefused) {
  Scenario s = crash(2.0);
  s.attempts = 1;
  auto result = simulate(s, "round-robin");
  ASSERT_TRUE(result.ok());
  // No second try: each refused pick is lost, besides the crashed server's requests in flight.
  EXPECT_GT(result->retries, 100u);
  EXPECT_GE(result->dropped, result->retries);
  EXPECT_LE(result->dropped, result->retries + 8);
}

}  // namespace
}  // namespace usher::sim
