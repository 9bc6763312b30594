#pragma once
// A discrete-event simulator that drives the balancing algorithms of src/balance (the very same
// objects the proxy uses) with a Scenario. Deterministic for a given seed.
#include <string>
#include <vector>

#include "sim/scenario.h"

namespace usher::sim {

struct ServerStats {
  uint64_t served = 0;
  double busy_s = 0;  // service time given, summed over slots
  uint32_t max_queue = 0;
  double mean_queue = 0;  // time-averaged waiting requests
};

// Between two of the scenario's events: where requests went, for a locality-aware scenario.
struct Phase {
  double from_s = 0;
  std::vector<uint64_t> by_zone;  // requests admitted, by the zone's place in Result::zones
  uint64_t by_tier[3] = {};       // same zone, same region, other (balance::Tier order)
};

struct Result {
  std::string algorithm;
  double p50_s = 0, p99_s = 0, p999_s = 0;
  double imbalance = 0;  // max over mean of per-server utilisation (busy / capacity)
  uint64_t dropped = 0;
  uint64_t sticky_breaks = 0;  // requests sent to another server than their key's previous one
  uint64_t retries = 0;        // tries refused by a crashed server not yet marked down
  std::vector<ServerStats> servers;
  std::vector<double> latency_cdf_s;                  // 100 quantiles, for plots
  std::vector<std::vector<uint32_t>> load_over_time;  // per sample: active per server
  std::vector<std::string> zones;                     // in order of first appearance
  std::vector<Phase> phases;                          // locality-aware scenarios only
};

Expected<Result> simulate(const Scenario& scenario, const std::string& algorithm);

}  // namespace usher::sim
