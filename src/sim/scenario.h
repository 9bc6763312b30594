#pragma once
// A described workload for the simulator: arrivals, request durations, servers, client keys and
// timed events. Built-in scenarios cover the classic questions; a YAML file can describe others.
#include <cstdint>
#include <string>
#include <vector>

#include "base/expected.h"

namespace usher::sim {

struct Distribution {
  enum class Kind : uint8_t { kConstant, kExponential, kLognormal, kBimodal, kUniform };
  Kind kind = Kind::kExponential;
  double a =
      0.1;  // constant value, exponential mean, lognormal median, bimodal short, uniform low (s)
  double b = 0;  // lognormal sigma, bimodal long, uniform high (s)
  double p = 0;  // bimodal: probability of the long one
};

struct Server {
  uint32_t concurrency = 8;  // requests served at once; more wait in the server's queue
  double speed = 1.0;        // a request of duration d takes d / speed here
  uint32_t weight = 1;
  uint32_t max_queue = 1000;  // beyond this a request is dropped
  std::string zone;           // where it runs (a scenario with `locality`)
  std::string region;
};

struct ServerEvent {
  double at_s = 0;
  uint32_t server = 0;
  bool up = false;  // false: crashes (its in-flight and queued requests are lost); true: joins
};

struct Scenario {
  std::string name;
  std::string description;
  uint64_t seed = 1;
  uint64_t requests = 100'000;
  double arrival_rate = 100;  // Poisson arrivals per second
  std::string trace_file;     // instead: CSV lines "arrival_s,duration_s,key"
  Distribution duration;
  std::vector<Server> servers;
  std::vector<ServerEvent> events;
  uint64_t keys = 10'000;   // distinct client keys
  double zipf_s = 0;        // 0: uniform keys; > 0: Zipf-skewed with this exponent
  bool sticky = false;      // requests need the same server for the same key
  double slow_start_s = 0;  // a joining server's weight ramps up over this long
  // How long health checks take to notice a server crashed or came back (the proxy's
  // interval x fall, or x rise). Until then the balancer still picks a crashed server, whose
  // refused connection sends the request on to the next candidate at once, as the proxy does.
  double detect_s = 1.0;
  uint32_t attempts = 3;  // tries per request on refused connections, the first included
  // Where the balancer runs: set, the pool is locality-aware (servers' zone and region).
  std::string local_zone;
  std::string local_region;
  bool locality_aware() const { return !local_zone.empty(); }
};

std::vector<std::string> builtin_names();
Expected<Scenario> builtin(const std::string& name);
// A YAML file with the keys of Scenario (see docs/balancing.md).
Expected<Scenario> load_scenario_file(const std::string& path);

}  // namespace usher::sim
