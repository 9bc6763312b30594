#include "sim/scenario.h"

#include <yaml-cpp/yaml.h>

#include "config/reader.h"

namespace usher::sim {

namespace {

Scenario named(std::string name, std::string description) {
  Scenario s;
  s.name = std::move(name);
  s.description = std::move(description);
  return s;
}

std::vector<Server> servers(size_t n, uint32_t concurrency, double speed = 1, uint32_t weight = 1) {
  return std::vector<Server>(n, Server{concurrency, speed, weight, 1000, {}, {}});
}

Scenario uniform() {
  Scenario s = named("uniform", "identical servers, uniform short requests at 70% load");
  s.requests = 200'000;
  s.arrival_rate = 560;
  s.duration = {Distribution::Kind::kExponential, 0.1};
  s.servers = servers(10, 8);
  return s;
}

Scenario varying_durations() {
  Scenario s = named("varying-durations", "jobs of 5 s to 5 min on 5 servers running 4 each");
  s.requests = 5'000;
  s.arrival_rate = 0.11;
  s.duration = {Distribution::Kind::kUniform, 5, 300};
  s.servers = servers(5, 4);
  return s;
}

Scenario sticky_cart() {
  Scenario s =
      named("sticky-cart", "shopping carts: a client must stay on the server that holds its cart");
  s.requests = 100'000;
  s.arrival_rate = 1000;
  s.duration = {Distribution::Kind::kExponential, 0.05};
  s.servers = servers(6, 16);
  s.keys = 5'000;
  s.sticky = true;
  return s;
}

Scenario heterogeneous() {
  Scenario s = named("heterogeneous", "one powerful server (weight 8) and two old ones (weight 1)");
  s.requests = 100'000;
  s.arrival_rate = 500;
  s.duration = {Distribution::Kind::kExponential, 0.1};
  s.servers = {Server{32, 2, 8, 1000, {}, {}}, Server{8, 1, 1, 1000, {}, {}},
               Server{8, 1, 1, 1000, {}, {}}};
  return s;
}

Scenario independent_api() {
  Scenario s =
      named("independent-api", "independent API calls of about 20 ms, lognormal, at 70% load");
  s.requests = 200'000;
  s.arrival_rate = 2'200;
  s.duration = {Distribution::Kind::kLognormal, 0.02, 0.8};
  s.servers = servers(8, 8);
  return s;
}

Scenario skewed_clients() {
  Scenario s = named("skewed-clients",
                     "client IPs Zipf-distributed (s = 1.1): a few clients send most requests");
  s.requests = 100'000;
  s.arrival_rate = 800;
  s.duration = {Distribution::Kind::kExponential, 0.05};
  s.servers = servers(8, 8);
  s.keys = 10'000;
  s.zipf_s = 1.1;
  return s;
}

Scenario server_crash() {
  Scenario s = named("server-crash", "5 servers; server 2 crashes at 40 s and returns at 70 s");
  s.requests = 50'000;
  s.arrival_rate = 500;
  s.duration = {Distribution::Kind::kExponential, 0.05};
  s.servers = servers(5, 8);
  s.events = {{40, 2, false}, {70, 2, true}};
  return s;
}

// The balancer runs in zone a of region r1, as do servers 0 and 1; servers 2 and 3 are in zone b
// of the same region, 4 and 5 in zone c of region r2. The local zone fails one server at a time:
// with one left it keeps 1.4 x 1/2 = 70 % of the requests and 30 % spill to zone b; with none
// left all go to zone b (region r2 stays untouched, zone b covers it all); then both return.
Scenario zone_failure() {
  Scenario s = named("zone-failure",
                     "locality-aware: zones a (local), b (same region), c (another region); zone a "
                     "loses server 0 at 30 s and server 1 at 60 s, both return at 90 s");
  s.requests = 48'000;
  s.arrival_rate = 400;
  s.duration = {Distribution::Kind::kExponential, 0.02};
  s.local_zone = "a";
  s.local_region = "r1";
  const char* zones[][2] = {{"a", "r1"}, {"b", "r1"}, {"c", "r2"}};
  for (const auto& [zone, region] : zones) {
    for (int i = 0; i < 2; ++i) s.servers.push_back(Server{8, 1, 1, 1000, zone, region});
  }
  s.events = {{30, 0, false}, {60, 1, false}, {90, 0, true}, {90, 1, true}};
  return s;
}

using Builder = Scenario (*)();
constexpr std::pair<const char*, Builder> kBuiltins[] = {
    {"uniform", uniform},
    {"varying-durations", varying_durations},
    {"sticky-cart", sticky_cart},
    {"heterogeneous", heterogeneous},
    {"independent-api", independent_api},
    {"skewed-clients", skewed_clients},
    {"server-crash", server_crash},
    {"zone-failure", zone_failure},
};

Expected<Distribution> read_distribution(const YAML::Node& n) {
  Distribution d;
  std::string kind = n["kind"].as<std::string>("exponential");
  if (kind == "constant") {
    d = {Distribution::Kind::kConstant, n["value"].as<double>()};
  } else if (kind == "exponential") {
    d = {Distribution::Kind::kExponential, n["mean"].as<double>()};
  } else if (kind == "lognormal") {
    d = {Distribution::Kind::kLognormal, n["median"].as<double>(), n["sigma"].as<double>()};
  } else if (kind == "bimodal") {
    d = {Distribution::Kind::kBimodal, n["short"].as<double>(), n["long"].as<double>(),
         n["p_long"].as<double>()};
  } else if (kind == "uniform") {
    d = {Distribution::Kind::kUniform, n["low"].as<double>(), n["high"].as<double>()};
  } else {
    return Error{"unknown duration kind '" + kind +
                 "' (constant, exponential, lognormal, bimodal, uniform)"};
  }
  return d;
}

}  // namespace

std::vector<std::string> builtin_names() {
  std::vector<std::string> names;
  for (const auto& [name, _] : kBuiltins) names.emplace_back(name);
  return names;
}

Expected<Scenario> builtin(const std::string& name) {
  for (const auto& [known, make] : kBuiltins) {
    if (name == known) return make();
  }
  return Error{"unknown scenario '" + name + "' (try --scenario list)"};
}

namespace {

// Unknown keys are errors, as in a configuration file: a misspelt key must not silently leave
// a default in place.
void check_scenario_keys(config::Reader& r, const YAML::Node& root) {
  r.check_keys(
      root,
      {"name", "description", "seed", "requests", "arrival_rate", "trace", "keys", "zipf", "sticky",
       "slow_start", "detect", "attempts", "duration", "servers", "events", "locality"},
      "a scenario");
  if (root["duration"] && r.expect_map(root["duration"], "duration")) {
    r.check_keys(
        root["duration"],
        {"kind", "value", "mean", "median", "sigma", "short", "long", "p_long", "low", "high"},
        "duration");
  }
  if (root["servers"] && r.expect_sequence(root["servers"], "servers")) {
    for (const auto& n : root["servers"]) {
      if (r.expect_map(n, "a server")) {
        r.check_keys(n, {"count", "concurrency", "speed", "weight", "max_queue", "zone", "region"},
                     "a server");
      }
    }
  }
  if (root["locality"] && r.expect_map(root["locality"], "locality")) {
    r.check_keys(root["locality"], {"zone", "region"}, "locality");
    if (!root["locality"]["zone"]) r.error(root["locality"].Mark(), "locality needs a 'zone'");
  }
  if (root["events"] && r.expect_sequence(root["events"], "events")) {
    for (const auto& n : root["events"]) {
      if (r.expect_map(n, "an event")) r.check_keys(n, {"at", "server", "up"}, "an event");
    }
  }
}

Expected<Scenario> read_scenario(config::Reader& r, const YAML::Node& root,
                                 const std::string& path) {
  Scenario s;
  s.name = root["name"].as<std::string>(path);
  s.description = root["description"].as<std::string>("");
  s.seed = root["seed"].as<uint64_t>(1);
  s.requests = root["requests"].as<uint64_t>(s.requests);
  s.arrival_rate = root["arrival_rate"].as<double>(s.arrival_rate);
  s.trace_file = root["trace"].as<std::string>("");
  s.keys = root["keys"].as<uint64_t>(s.keys);
  s.zipf_s = root["zipf"].as<double>(0);
  s.sticky = root["sticky"].as<bool>(false);
  s.slow_start_s = root["slow_start"].as<double>(0);
  s.detect_s = root["detect"].as<double>(s.detect_s);
  s.attempts = root["attempts"].as<uint32_t>(s.attempts);
  if (root["duration"]) {
    auto d = read_distribution(root["duration"]);
    if (!d) r.error(root["duration"].Mark(), d.error().message);
    if (d) s.duration = *d;
  }
  for (const auto& n : root["servers"]) {
    Server server{n["concurrency"].as<uint32_t>(8), n["speed"].as<double>(1),
                  n["weight"].as<uint32_t>(1),      n["max_queue"].as<uint32_t>(1000),
                  n["zone"].as<std::string>(""),    n["region"].as<std::string>("")};
    for (uint32_t i = 0; i < n["count"].as<uint32_t>(1); ++i) s.servers.push_back(server);
  }
  for (const auto& n : root["events"]) {
    s.events.push_back({n["at"].as<double>(), n["server"].as<uint32_t>(), n["up"].as<bool>(false)});
  }
  if (root["locality"]) {
    s.local_zone = root["locality"]["zone"].as<std::string>();
    s.local_region = root["locality"]["region"].as<std::string>("");
  }
  if (s.servers.empty()) r.error(root.Mark(), "'servers' lists no server");
  if (s.arrival_rate <= 0 || s.keys == 0) {
    r.error(root.Mark(), "arrival_rate and keys must be above 0");
  }
  return s;
}

}  // namespace

Expected<Scenario> load_scenario_file(const std::string& path) {
  config::Errors errors;
  config::Reader r(path, errors);
  Scenario scenario;
  try {
    const std::optional<std::string> text = config::read_file(path, errors);
    const std::optional<YAML::Node> root = text ? r.parse(*text) : std::nullopt;
    if (root && r.expect_document(*root, "the scenario")) {
      check_scenario_keys(r, *root);
      if (errors.messages.empty()) scenario = *read_scenario(r, *root, path);
    }
  } catch (const YAML::Exception& e) {
    r.error(e.mark, e.msg);
  }
  if (errors.messages.empty()) return scenario;
  std::string all;
  for (const std::string& m : errors.messages) all += (all.empty() ? "" : "\n") + m;
  return Error{all};
}

}  // namespace usher::sim
