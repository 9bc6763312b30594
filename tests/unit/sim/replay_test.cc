#include "sim/replay.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <random>
#include <string>

namespace usher::sim {
namespace {

class TempLog {
 public:
  TempLog() {
    char name[] = "/tmp/usher-replay-XXXXXX";
    const int fd = ::mkstemp(name);
    ::close(fd);
    path_ = name;
  }
  ~TempLog() { std::remove(path_.c_str()); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

std::string json_line(double end_s, double duration_ms, const std::string& client,
                      const std::string& backend) {
  const auto second = static_cast<time_t>(end_s);
  char time[32];
  std::tm tm{};
  gmtime_r(&second, &tm);
  std::strftime(time, sizeof time, "%Y-%m-%dT%H:%M:%S", &tm);
  char line[512];
  std::snprintf(
      line, sizeof line,
      R"({"time":"%s.%03dZ","client":"%s","status":200,"duration_ms":%.3f,"backend":"%s","queue_ms":0})"
      "\n",
      time, static_cast<int>((end_s - static_cast<double>(second)) * 1000), client.c_str(),
      duration_ms, backend.c_str());
  return line;
}

// 4000 requests at 100/s on two backends, the second three times slower; written in order of
// their ends, as usher writes them.
void write_log(const std::string& path) {
  std::mt19937_64 rng(3);
  std::exponential_distribution<double> gap(100), service(1 / 0.010);
  std::vector<std::pair<double, std::string>> lines;
  double t = 1'800'000'000;
  for (int i = 0; i < 4000; ++i) {
    t += gap(rng);
    const bool slow = i % 2;
    const double d = service(rng) * (slow ? 3 : 1);
    lines.emplace_back(t + d, json_line(t + d, d * 1000, "10.0.0." + std::to_string(i % 50),
                                        slow ? "b:80" : "a:80"));
  }
  std::sort(lines.begin(), lines.end());
  std::ofstream out(path);
  out << "not a log line\n";
  for (const auto& [end, line] : lines) out << line;
  out << json_line(t, 0.1, "10.0.0.1", "");  // usher's own 404
}

TEST(Replay, SurveyFindsTheServersTheirSpeedsAndTheBadLines) {
  TempLog log;
  write_log(log.path());
  ReplayOptions options;
  options.log = log.path();
  const auto survey = survey_log(options, {});
  ASSERT_TRUE(survey.ok()) << survey.error().message;
  EXPECT_EQ(survey->lines, 4002u);
  EXPECT_EQ(survey->usable, 4000u);
  EXPECT_EQ(survey->without_backend, 1u);
  EXPECT_EQ(survey->unusable, 1u);
  ASSERT_EQ(survey->first_problems.size(), 1u);
  EXPECT_EQ(survey->first_problems[0].line, 1u);
  ASSERT_EQ(survey->backends, (std::vector<std::string>{"a:80", "b:80"}));
  EXPECT_DOUBLE_EQ(survey->speeds[0], 1.0);
  EXPECT_NEAR(survey->speeds[1], 1 / 3.0, 0.08);
  EXPECT_NEAR(survey->last_arrival_s - survey->first_arrival_s, 40, 3);
}

// Every request is replayed once, by every algorithm; a load-aware algorithm beats round-robin
// when one server is slower; fewer servers or more traffic make it worse.
TEST(Replay, ReplaysEveryRequestThroughEveryAlgorithm) {
  TempLog log;
  write_log(log.path());
  ReplayOptions options;
  options.log = log.path();
  options.concurrency = 1;
  const auto survey = survey_log(options, {});
  ASSERT_TRUE(survey.ok());
  const Scenario scenario = replay_scenario(options, *survey);
  ASSERT_EQ(scenario.servers.size(), 2u);
  const auto results =
      replay_log(options, *survey, scenario, {"round-robin", "least-connections"}, {});
  ASSERT_TRUE(results.ok()) << results.error().message;
  for (const Result& r : *results) {
    EXPECT_EQ(r.servers[0].served + r.servers[1].served + r.dropped, 4000u) << r.algorithm;
  }
  EXPECT_LT((*results)[1].p99_s, (*results)[0].p99_s);

  ReplayOptions busier = options;
  busier.speed = 1.5;
  busier.servers = 1;
  const auto worse =
      replay_log(busier, *survey, replay_scenario(busier, *survey), {"least-connections"}, {});
  ASSERT_TRUE(worse.ok());
  EXPECT_GT((*worse)[0].p99_s, (*results)[1].p99_s);
}

// One request that lasted 50 minutes arrived long before the lines around it were written: the
// window does not grow to hold 50 minutes of requests (the replay's memory stays bounded); the
// request is replayed late instead. One that lasted over an hour is not a request at all.
TEST(Replay, ALongRequestDoesNotWidenTheWindowBeyondAMinute) {
  TempLog log;
  {
    std::ofstream out(log.path());
    const double start = 1'800'000'000;
    for (int i = 0; i < 6000; ++i) {  // 10 a second for 10 minutes, 5 ms each
      const double t = start + i * 0.1;
      out << json_line(t + 0.005, 5, "10.0.0.1", "a:80");
      if (i == 3000) out << json_line(t, 50 * 60 * 1000, "10.0.0.2", "a:80");
      if (i == 3001) out << json_line(t, 2 * 3600 * 1000, "10.0.0.3", "a:80");
    }
  }
  ReplayOptions options;
  options.log = log.path();
  const auto survey = survey_log(options, {});
  ASSERT_TRUE(survey.ok()) << survey.error().message;
  EXPECT_EQ(survey->usable, 6001u);
  EXPECT_EQ(survey->unusable, 1u);
  EXPECT_EQ(survey->first_problems[0].reason, "lasted over an hour");
  ReplayStats stats;
  const auto results =
      replay_log(options, *survey, replay_scenario(options, *survey), {"round-robin"}, {}, &stats);
  ASSERT_TRUE(results.ok());
  EXPECT_EQ((*results)[0].servers[0].served, 6001u);
  EXPECT_EQ(stats.late, 1u);
  EXPECT_LE(stats.held_most, 61u * 10 + 10);  // a minute's worth at 10 a second
}

TEST(Replay, CombinedLinesNeedADurationAndServers) {
  TempLog log;
  {
    std::ofstream out(log.path());
    for (int i = 0; i < 100; ++i) {
      out << "10.0.0." << i % 9 << " - - [01/Dec/2026:21:42:" << 10 + i / 10
          << " +0000] \"GET / HTTP/1.1\" 200 5 \"-\" \"curl\"\n";
    }
  }
  ReplayOptions options;
  options.log = log.path();
  auto survey = survey_log(options, {});
  ASSERT_FALSE(survey.ok());
  EXPECT_NE(survey.error().message.find("no line to replay"), std::string::npos);
  options.duration_s = 0.01;
  survey = survey_log(options, {});
  ASSERT_FALSE(survey.ok());
  EXPECT_NE(survey.error().message.find("--servers"), std::string::npos);
  options.servers = 3;
  survey = survey_log(options, {});
  ASSERT_TRUE(survey.ok()) << survey.error().message;
  EXPECT_TRUE(survey->combined);
  const auto results =
      replay_log(options, *survey, replay_scenario(options, *survey), {"round-robin"}, {});
  ASSERT_TRUE(results.ok());
  EXPECT_EQ((*results)[0].servers.size(), 3u);
  EXPECT_EQ((*results)[0].servers[0].served, 34u);
}

TEST(Replay, RefusesWhatIsNotARegularFile) {
  ReplayOptions options;
  options.log = "/dev/zero";
  EXPECT_FALSE(survey_log(options, {}).ok());
  options.log = "/nonexistent/usher.log";
  EXPECT_FALSE(survey_log(options, {}).ok());
}

}  // namespace
}  // namespace usher::sim
