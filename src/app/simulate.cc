#include "app/simulate.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>

#include "balance/picker.h"
#include "sim/replay.h"
#include "sim/simulator.h"

namespace usher::app {

namespace {

void print_table(const sim::Scenario& scenario, const std::vector<sim::Result>& results) {
  std::printf("scenario %s (seed %llu): %s\n", scenario.name.c_str(),
              static_cast<unsigned long long>(scenario.seed), scenario.description.c_str());
  std::printf("%-22s %10s %10s %10s %10s %9s%s\n", "algorithm", "p50 s", "p99 s", "p999 s",
              "imbalance", "dropped", scenario.sticky ? "  sticky breaks" : "");
  for (const sim::Result& r : results) {
    std::printf("%-22s %10.4f %10.4f %10.4f %10.3f %9llu", r.algorithm.c_str(), r.p50_s, r.p99_s,
                r.p999_s, r.imbalance, static_cast<unsigned long long>(r.dropped));
    if (scenario.sticky) std::printf("  %13llu", static_cast<unsigned long long>(r.sticky_breaks));
    std::printf("\n");
  }
}

// What the replay took from the log: the servers it found and the lines it could not use.
void print_survey(const SimulateOptions& options, const sim::Survey& survey) {
  std::printf("log %s: %llu lines, %llu replayed, %llu answered by usher itself, %llu unusable\n",
              options.replay.c_str(), static_cast<unsigned long long>(survey.lines),
              static_cast<unsigned long long>(survey.usable),
              static_cast<unsigned long long>(survey.without_backend),
              static_cast<unsigned long long>(survey.unusable));
  for (size_t i = 0; i < survey.backends.size(); ++i) {
    std::printf("  backend %-24s speed %.2f\n", survey.backends[i].c_str(), survey.speeds[i]);
  }
}

nlohmann::json survey_json(const sim::Survey& survey) {
  nlohmann::json backends = nlohmann::json::array();
  for (size_t i = 0; i < survey.backends.size(); ++i) {
    backends.push_back({{"name", survey.backends[i]}, {"speed", survey.speeds[i]}});
  }
  nlohmann::json problems = nlohmann::json::array();
  for (const sim::LineProblem& p : survey.first_problems) {
    problems.push_back({{"line", p.line}, {"reason", p.reason}});
  }
  return {{"lines", survey.lines},
          {"replayed", survey.usable},
          {"without_backend", survey.without_backend},
          {"unusable", survey.unusable},
          {"first_unusable", problems},
          {"backends", backends},
          {"span_s", survey.last_arrival_s - survey.first_arrival_s}};
}

// What changed at a phase's start: "start", or the events then ("server 0 down, server 1 up").
std::string phase_label(const sim::Scenario& scenario, double from_s) {
  std::string label;
  for (const sim::ServerEvent& e : scenario.events) {
    if (e.at_s != from_s) continue;
    label += (label.empty() ? "" : ", ") + std::string("server ") + std::to_string(e.server) +
             (e.up ? " up" : " down");
  }
  return label.empty() ? "start" : label;
}

double percent(uint64_t part, uint64_t whole) {
  return whole ? 100.0 * static_cast<double>(part) / static_cast<double>(whole) : 0;
}

// Per phase and algorithm, the share of requests each zone and each tier took: the spill of a
// failing local zone shows as its share falling and the next tier's rising.
void print_zones(const sim::Scenario& scenario, const std::vector<sim::Result>& results) {
  if (results.empty() || results.front().phases.empty()) return;
  std::printf("\nrequests per zone and tier (here: zone %s, region %s)\n",
              scenario.local_zone.c_str(), scenario.local_region.c_str());
  const sim::Result& first = results.front();
  for (size_t p = 0; p < first.phases.size(); ++p) {
    std::printf("from %.0f s (%s):\n", first.phases[p].from_s,
                phase_label(scenario, first.phases[p].from_s).c_str());
    for (const sim::Result& r : results) {
      const sim::Phase& phase = r.phases[p];
      uint64_t total = 0;
      for (uint64_t n : phase.by_zone) total += n;
      std::printf("  %-22s", r.algorithm.c_str());
      for (size_t z = 0; z < r.zones.size(); ++z) {
        std::printf(" zone %s %5.1f%%", r.zones[z].empty() ? "-" : r.zones[z].c_str(),
                    percent(phase.by_zone[z], total));
      }
      std::printf("   tiers zone/region/other %5.1f%% %5.1f%% %5.1f%%\n",
                  percent(phase.by_tier[0], total), percent(phase.by_tier[1], total),
                  percent(phase.by_tier[2], total));
    }
  }
}

nlohmann::json phases_json(const sim::Scenario& scenario, const sim::Result& r) {
  nlohmann::json phases = nlohmann::json::array();
  for (const sim::Phase& phase : r.phases) {
    nlohmann::json zones = nlohmann::json::object();
    for (size_t z = 0; z < r.zones.size(); ++z) zones[r.zones[z]] = phase.by_zone[z];
    phases.push_back({{"from_s", phase.from_s},
                      {"what", phase_label(scenario, phase.from_s)},
                      {"zones", zones},
                      {"tiers",
                       {{"zone", phase.by_tier[0]},
                        {"region", phase.by_tier[1]},
                        {"other", phase.by_tier[2]}}}});
  }
  return phases;
}

void print_json(const sim::Scenario& scenario, const std::vector<sim::Result>& results,
                const std::optional<sim::Survey>& survey) {
  nlohmann::json out = {
      {"scenario", scenario.name}, {"seed", scenario.seed}, {"results", nlohmann::json::array()}};
  if (survey) out["log"] = survey_json(*survey);
  for (const sim::Result& r : results) {
    nlohmann::json servers = nlohmann::json::array();
    for (const sim::ServerStats& s : r.servers) {
      servers.push_back(
          {{"served", s.served}, {"max_queue", s.max_queue}, {"mean_queue", s.mean_queue}});
    }
    out["results"].push_back({{"algorithm", r.algorithm},
                              {"p50_s", r.p50_s},
                              {"p99_s", r.p99_s},
                              {"p999_s", r.p999_s},
                              {"imbalance", r.imbalance},
                              {"dropped", r.dropped},
                              {"sticky_breaks", r.sticky_breaks},
                              {"servers", servers}});
    if (!r.phases.empty()) out["results"].back()["phases"] = phases_json(scenario, r);
  }
  std::cout << out.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << '\n';
}

// The winner: where clients must stick, fewest clients moved (none, unless a server fails and
// every algorithm must move some); then fewest drops, then lowest p99.
const sim::Result& winner(const sim::Scenario& scenario, const std::vector<sim::Result>& results) {
  auto rank = [&](const sim::Result& r) {
    return std::tuple(scenario.sticky ? r.sticky_breaks : 0, r.dropped, r.p99_s, r.imbalance);
  };
  return *std::min_element(results.begin(), results.end(),
                           [&](const auto& a, const auto& b) { return rank(a) < rank(b); });
}

void print_recommendation(const sim::Scenario& scenario, const std::vector<sim::Result>& results) {
  const sim::Result& best = winner(scenario, results);
  const sim::Result* runner = nullptr;
  for (const sim::Result& r : results) {
    if (&r != &best && (!runner || r.p99_s < runner->p99_s)) runner = &r;
  }
  std::printf("recommend: %s: p99 %.4f s", best.algorithm.c_str(), best.p99_s);
  if (runner) std::printf(" (next best %s: %.4f s)", runner->algorithm.c_str(), runner->p99_s);
  std::printf(", imbalance %.2f, %llu dropped", best.imbalance,
              static_cast<unsigned long long>(best.dropped));
  // The ranking prefers algorithms that never move a client, but when every one of them does
  // (a server fails and its clients must go elsewhere) the winner moves some too: say how many.
  if (scenario.sticky && best.sticky_breaks == 0) {
    std::printf(", keeps every client on its server");
  } else if (scenario.sticky) {
    std::printf(", moves clients to another server %llu times (every algorithm moved some)",
                static_cast<unsigned long long>(best.sticky_breaks));
  }
  std::printf("\n");
}

int plot(const std::string& path, const sim::Scenario& scenario,
         const std::vector<sim::Result>& results) {
  namespace fs = std::filesystem;
  fs::path dir = fs::temp_directory_path() / ("usher-sim-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::ofstream script(dir / "plot.gp");
  script
      << "set terminal pngcairo size 1400,600\nset output '" << path
      << "'\nset multiplot layout 1,2 title '" << scenario.name
      << "'\nset title 'latency CDF'\nset xlabel 'seconds'\nset ylabel 'fraction'\nset logscale x\n"
      << "set key bottom right\nplot ";
  for (size_t i = 0; i < results.size(); ++i) {
    std::ofstream data(dir / ("cdf" + std::to_string(i)));
    for (size_t q = 0; q < results[i].latency_cdf_s.size(); ++q) {
      data << std::max(results[i].latency_cdf_s[q], 1e-6) << ' ' << (q + 1) / 100.0 << '\n';
    }
    script << (i ? ", " : "") << "'" << (dir / ("cdf" + std::to_string(i))).string()
           << "' with lines lw 2 title '" << results[i].algorithm << "'";
  }
  const sim::Result& best = winner(scenario, results);
  {
    std::ofstream load(dir / "load");
    for (size_t t = 0; t < best.load_over_time.size(); ++t) {
      load << t;
      for (uint32_t v : best.load_over_time[t]) load << ' ' << v;
      load << '\n';
    }
  }
  script << "\nunset logscale x\nset title 'requests per server over time (" << best.algorithm
         << ")'\nset xlabel 'sample'\nset ylabel 'active + queued'\nplot ";
  for (size_t s = 0; s < scenario.servers.size(); ++s) {
    script << (s ? ", " : "") << "'" << (dir / "load").string() << "' using 1:" << s + 2
           << " with lines title 'server " << s << "'";
  }
  script << "\nunset multiplot\n";
  script.close();
  std::string command = "gnuplot '" + (dir / "plot.gp").string() + "'";
  int rc = std::system(command.c_str());
  fs::remove_all(dir);
  if (rc != 0) {
    std::cerr << "usher simulate: gnuplot failed (is gnuplot installed?)\n";
    return 1;
  }
  std::cerr << "plot written to " << path << '\n';
  return 0;
}

struct Outcome {
  sim::Scenario scenario;
  std::vector<sim::Result> results;
  std::optional<sim::Survey> survey;  // of the replayed log
};

Expected<Outcome> run_scenario(const SimulateOptions& options,
                               const std::vector<std::string>& names) {
  const bool is_file =
      options.scenario.find('/') != std::string::npos || options.scenario.ends_with(".yaml");
  auto scenario =
      is_file ? sim::load_scenario_file(options.scenario) : sim::builtin(options.scenario);
  if (!scenario) return scenario.error();
  if (options.seed >= 0) scenario->seed = static_cast<uint64_t>(options.seed);
  Outcome outcome{std::move(*scenario), {}, std::nullopt};
  for (const std::string& name : names) {
    auto result = sim::simulate(outcome.scenario, name);
    if (!result) return result.error();
    outcome.results.push_back(std::move(*result));
  }
  return outcome;
}

// On a terminal, how far the reading of the log has come, redrawn at most ten times a second.
sim::ReplayProgress progress_bar() {
  if (!::isatty(STDERR_FILENO)) return {};
  return [last = std::chrono::steady_clock::time_point{}](int pass, uint64_t read,
                                                          uint64_t total) mutable {
    const auto now = std::chrono::steady_clock::now();
    const bool done = read >= total;
    if (!done && now - last < std::chrono::milliseconds(100)) return;
    last = now;
    const double share = total ? static_cast<double>(read) / static_cast<double>(total) : 1;
    const int filled = static_cast<int>(share * 30);
    std::fprintf(stderr, "\r%s [%-30.*s] %3.0f%% of %.1f MB", pass == 1 ? "survey" : "replay",
                 filled, "##############################", share * 100,
                 static_cast<double>(total) / 1e6);
    if (done) std::fprintf(stderr, "\r\033[K");
    std::fflush(stderr);
  };
}

Expected<Outcome> run_replay(const SimulateOptions& options,
                             const std::vector<std::string>& names) {
  sim::ReplayOptions replay;
  replay.log = options.replay;
  replay.servers = options.servers;
  replay.speed = options.speed;
  replay.concurrency = options.concurrency;
  replay.duration_s = options.duration_s;
  if (options.seed >= 0) replay.seed = static_cast<uint64_t>(options.seed);
  const sim::ReplayProgress progress = progress_bar();
  auto survey = sim::survey_log(replay, progress);
  if (!survey) return survey.error();
  // Lines it cannot use are counted and the first few shown; they never stop the replay.
  for (const sim::LineProblem& problem : survey->first_problems) {
    std::cerr << "usher simulate: " << replay.log << ':' << problem.line
              << ": skipped: " << problem.reason << '\n';
  }
  Outcome outcome{sim::replay_scenario(replay, *survey), {}, std::move(*survey)};
  auto results = sim::replay_log(replay, *outcome.survey, outcome.scenario, names, progress);
  if (!results) return results.error();
  outcome.results = std::move(*results);
  return outcome;
}

}  // namespace

int simulate(const SimulateOptions& options) {
  if (options.scenario == "list") {
    for (const std::string& name : sim::builtin_names()) {
      std::printf("%-20s %s\n", name.c_str(), sim::builtin(name)->description.c_str());
    }
    return 0;
  }
  if (options.scenario.empty() && options.replay.empty()) {
    std::cerr << "usher simulate: give --scenario NAME|FILE|list or --replay ACCESS_LOG\n";
    return 1;
  }
  std::vector<std::string> names = options.algorithms;
  if (names.empty()) {
    for (const auto& a : balance::algorithms()) names.emplace_back(a.name);
  }
  auto run = options.replay.empty() ? run_scenario(options, names) : run_replay(options, names);
  if (!run) {
    std::cerr << "usher simulate: " << run.error().message << '\n';
    return 1;
  }
  const auto& [scenario, results, survey] = *run;
  if (options.format == "json") {
    print_json(scenario, results, survey);
  } else {
    if (survey) print_survey(options, *survey);
    print_table(scenario, results);
    print_zones(scenario, results);
  }
  if (options.recommend) print_recommendation(scenario, results);
  return options.plot.empty() ? 0 : plot(options.plot, scenario, results);
}

}  // namespace usher::app
