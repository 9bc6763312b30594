#pragma once
// A discrete-event simulator that drives the balancing algorithms of src/balance (the very same
// objects the proxy uses) with a Scenario. Deterministic for a given seed.
#include <memory>
#include <string>
#include <vector>

#include "sim/scenario.h"

namespace usher::sim {

struct Request {
  double arrival_s = 0;
  double duration_s = 0;  // of service on a server of speed 1
  uint64_t key = 0;       // the client's
};

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

// The scenario's own requests (generated, or its trace file) through one algorithm.
Expected<Result> simulate(const Scenario& scenario, const std::string& algorithm);

// Whether `algorithm` can run over the scenario's servers: the checks simulate() makes.
Expected<bool> check_run(const Scenario& scenario, const std::string& algorithm);

class Simulation;

// One algorithm fed requests one at a time in arrival order, holding only those in flight: a
// replayed access log is read once for every algorithm, and never held whole. The scenario's
// own requests are not used; its servers, events and the rest are.
class Run {
 public:
  // `span_s`: about when the last request arrives, for the load samples.
  Run(const Scenario& scenario, std::string algorithm, double span_s);
  Run(Run&&) noexcept;
  ~Run();

  Expected<bool> start();
  void offer(const Request& request);
  Result finish();

 private:
  std::unique_ptr<Simulation> simulation_;
};

}  // namespace usher::sim
