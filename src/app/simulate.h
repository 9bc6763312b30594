#pragma once
// `usher simulate`: runs balancing algorithms over a scenario and reports which one wins.
#include <string>
#include <vector>

namespace usher::app {

struct SimulateOptions {
  std::string scenario;
  std::vector<std::string> algorithms;  // empty: all
  std::string format = "table";         // table | json
  std::string plot;                     // PNG path, optional
  long long seed = -1;                  // -1: the scenario's own
  bool recommend = false;
};

int simulate(const SimulateOptions& options);

}  // namespace usher::app
