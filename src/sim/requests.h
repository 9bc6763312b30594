#pragma once
// The requests of a described workload: Poisson arrivals, durations drawn from the scenario's
// distribution, uniform or Zipf-skewed client keys; or the lines of its trace file.
#include <random>
#include <vector>

#include "base/expected.h"
#include "sim/scenario.h"
#include "sim/simulator.h"

namespace usher::sim {

// In arrival order, drawn from `rng`.
Expected<std::vector<Request>> make_requests(const Scenario& s, std::mt19937_64& rng);

}  // namespace usher::sim
