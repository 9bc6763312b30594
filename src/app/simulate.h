#pragma once
// `usher simulate`: runs balancing algorithms over a scenario and reports which one wins.
#include <string>
#include <vector>

namespace usher::app {

struct SimulateOptions {
  std::string scenario;
  // --replay: the workload of an access log instead of a scenario, with what-ifs.
  std::string replay;
  uint32_t servers = 0;                 // 0: the log's backends
  double speed = 1;                     // traffic multiplier
  uint32_t concurrency = 8;             // per server
  double duration_s = 0;                // service time of combined-format lines
  std::vector<std::string> algorithms;  // empty: all
  std::string format = "table";         // table | json
  std::string plot;                     // PNG path, optional
  long long seed = -1;                  // -1: the scenario's own
  bool recommend = false;
};

int simulate(const SimulateOptions& options);

}  // namespace usher::app
