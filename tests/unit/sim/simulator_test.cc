#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

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

std::string scenario_file(const std::string& text) {
  char path[] = "/tmp/usher-scenario-XXXXXX";
  const int fd = ::mkstemp(path);
  [[maybe_unused]] ssize_t n = ::write(fd, text.data(), text.size());
  ::close(fd);
  return path;
}

// Scenario files go through the configuration's Reader: a misspelt key is an error with its
// position, never a silent default.
TEST(ScenarioFile, UnknownKeysAreErrorsWithTheirPosition) {
  const std::string path = scenario_file(
      "requests: 10\nservers:\n  - { count: 2, concurency: 4 }\nevents:\n  - { at: 1, srv: 0 "
      "}\n");
  auto loaded = load_scenario_file(path);
  ::unlink(path.c_str());
  ASSERT_FALSE(loaded.ok());
  EXPECT_NE(loaded.error().message.find(path + ":3:17: unknown key 'concurency'"),
            std::string::npos)
      << loaded.error().message;
  EXPECT_NE(loaded.error().message.find(path + ":5:14: unknown key 'srv'"), std::string::npos)
      << loaded.error().message;
}

TEST(ScenarioFile, DuplicateKeysAreErrorsWithTheirPosition) {
  const std::string path =
      scenario_file("requests: 10\nservers:\n  - { count: 2, count: 3 }\nrequests: 20\n");
  auto loaded = load_scenario_file(path);
  ::unlink(path.c_str());
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.error().message, path + ":3:17: duplicate key 'count' (first at 3:7)\n" + path +
                                        ":4:1: duplicate key 'requests' (first at 1:1)");
}

TEST(ScenarioFile, AWellFormedFileLoads) {
  const std::string path = scenario_file(
      "requests: 10\ndetect: 0.5\nduration: { kind: constant, value: 0.01 }\nservers:\n  - { "
      "count: 2 }\n");
  auto loaded = load_scenario_file(path);
  ::unlink(path.c_str());
  ASSERT_TRUE(loaded.ok()) << loaded.error().message;
  EXPECT_EQ(loaded->servers.size(), 2u);
  EXPECT_EQ(loaded->detect_s, 0.5);
}

}  // namespace
}  // namespace usher::sim
