#pragma once
// Replays the workload an access log recorded through the balancing algorithms: arrival times,
// service times and client keys from the log's lines, servers from its backends. The log is
// read twice, a line at a time (a survey of its servers and span, then the replay, every
// algorithm in the same pass), so a log of any size runs in bounded memory.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "sim/scenario.h"
#include "sim/simulator.h"

namespace usher::sim {

struct ReplayOptions {
  std::string log;
  uint32_t servers = 0;      // 0: one per backend the log names
  double speed = 1;          // traffic multiplier: 1.5 replays the arrivals 1.5 times as fast
  uint32_t concurrency = 8;  // requests a server works on at once (a log cannot tell)
  double duration_s = 0;     // the service time of combined lines, which carry none
  uint64_t seed = 1;
};

struct LineProblem {
  uint64_t line = 0;
  std::string reason;
};

// What the first pass found.
struct Survey {
  static constexpr size_t kProblemsKept = 5;

  uint64_t lines = 0;
  uint64_t usable = 0;
  uint64_t without_backend = 0;  // answered by usher itself (404, 429, ...): no server worked
  uint64_t unusable = 0;
  std::vector<LineProblem> first_problems;  // the first kProblemsKept
  std::vector<std::string> backends;        // as the log names them, by first appearance
  std::vector<double> speeds;               // of each backend, the fastest 1 (see replay.cc)
  double first_arrival_s = 0;               // seconds since the epoch
  double last_arrival_s = 0;
  bool combined = false;  // the log's lines are in the combined format
};

// Called now and then while a pass reads the log (pass 1 or 2).
using ReplayProgress = std::function<void(int pass, uint64_t bytes_read, uint64_t bytes_total)>;

Expected<Survey> survey_log(const ReplayOptions& options, const ReplayProgress& progress);

// The servers the replay runs on: the log's backends (or `options.servers` of them) at their
// speeds, with the given concurrency.
Scenario replay_scenario(const ReplayOptions& options, const Survey& survey);

// How the arrival-order window went (replay.cc's ArrivalOrder).
struct ReplayStats {
  uint64_t late = 0;       // requests replayed after others that arrived later (long ones)
  uint64_t held_most = 0;  // requests held in the window at once: the replay's memory
};

// Every algorithm in `algorithms` over the log's requests, in one reading of it.
Expected<std::vector<Result>> replay_log(const ReplayOptions& options, const Survey& survey,
                                         const Scenario& scenario,
                                         const std::vector<std::string>& algorithms,
                                         const ReplayProgress& progress,
                                         ReplayStats* stats = nullptr);

}  // namespace usher::sim
