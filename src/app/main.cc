// usher's command line: wiring only. Every subcommand returns the process exit code.
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <cstdlib>
#include <iostream>
#include <optional>

#include "app/ctl.h"
#include "app/dns.h"
#include "app/geoip.h"
#include "app/server.h"
#include "app/simulate.h"
#include "app/upgrade.h"
#include "base/version.h"
#include "config/config.h"
#include "tls/context.h"

namespace {

using usher::config::Config;

// `path`: the file reloads re-read; empty in quick mode. `takeover`: the listening sockets of
// the process this one upgrades.
int run_server(Config config, std::string path,
               std::unique_ptr<usher::app::UpgradeTakeover> takeover = nullptr) {
  // Lets a test suite (or an operator trying a backend) pick one without editing the file.
  std::optional<usher::config::IoBackend> forced;
  if (const char* backend = std::getenv("USHER_IO_BACKEND"); backend && *backend) {
    auto parsed = usher::config::parse_io_backend(backend);
    if (!parsed) {
      std::cerr << "USHER_IO_BACKEND: " << parsed.error().message << '\n';
      return 2;
    }
    forced = *parsed;
  }
  usher::app::block_control_signals();
  usher::app::Server server(std::move(config), std::move(path), forced);
  if (takeover) server.take_over(std::move(takeover));
  return server.run();
}

// Loads a config file, printing every problem; nullopt-like empty workers count on failure.
bool load(const std::string& path, Config& config) {
  usher::config::Errors errors;
  auto loaded = usher::config::load_file(path, errors);
  if (loaded) usher::app::resolve_dns_pools(*loaded, nullptr, errors);
  for (const std::string& message : errors.messages) std::cerr << message << '\n';
  if (!loaded || !errors.messages.empty()) return false;
  config = std::move(*loaded);
  return true;
}

// Loads every certificate and CA file the way a worker would: chains parse, keys match. Warns about
// certificates that expire within 14 days.
bool check_certificates(const Config& config) {
  usher::tls::Library library;
  std::vector<std::string> problems;
  auto contexts = usher::tls::build_contexts(config, {&library}, problems);
  for (const std::string& message : problems) std::cerr << message << '\n';
  if (!problems.empty()) return false;
  for (const std::string& warning :
       usher::tls::expiry_warnings(contexts.front().listeners, std::time(nullptr), 14 * 86400)) {
    std::cerr << "warning: " << warning << '\n';
  }
  return true;
}

// Opens the geoip database as a generation would: a missing or corrupt file fails the check.
bool check_geoip(const Config& config) {
  auto database = usher::app::open_geoip(config);
  if (!database) std::cerr << database.error().message << '\n';
  return database.ok();
}

int check(const std::string& path) {
  Config config;
  if (!load(path, config)) return 1;
  const bool certificates = check_certificates(config);
  if (!check_geoip(config) || !certificates) return 1;
  size_t backends = 0;
  for (const auto& pool : config.pools) backends += pool.backends.size();
  std::cout << path << ": configuration is valid (" << config.listeners.size() << " listeners, "
            << config.pools.size() << " pools, " << backends << " backends)\n";
  return 0;
}

int run(const std::string& path, bool upgrade) {
  Config config;
  if (!load(path, config)) return 1;
  if (!upgrade) return run_server(std::move(config), path);
  if (config.upgrade_socket.empty()) {
    std::cerr << path << ": --upgrade needs 'upgrade_socket' in the configuration\n";
    return 1;
  }
  auto takeover = usher::app::UpgradeTakeover::connect(config.upgrade_socket);
  if (!takeover) {
    std::cerr << takeover.error().message << '\n';
    return 1;
  }
  return run_server(std::move(config), path, std::move(*takeover));
}

int quick_proxy(const usher::config::QuickSpec& spec) {
  usher::config::Errors errors;
  auto config = usher::config::quick_config(spec, errors);
  if (!config) {
    for (const std::string& message : errors.messages) std::cerr << message << '\n';
    return 1;
  }
  return run_server(std::move(*config), {});
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"usher: a load balancer and reverse proxy"};
  app.set_version_flag("--version", std::string("usher ") + usher::kVersion);
  app.require_subcommand(1);

  std::string config_path;
  auto* run_cmd = app.add_subcommand("run", "Run the proxy from a configuration file");
  run_cmd->add_option("-c,--config", config_path, "Configuration file (YAML)")->required();
  bool upgrade = false;
  run_cmd->add_flag("--upgrade", upgrade,
                    "Take over the listening sockets of the usher running with this file's "
                    "upgrade_socket, then let it drain");

  auto* check_cmd = app.add_subcommand("check", "Validate a configuration file and exit");
  check_cmd->add_option("-c,--config", config_path, "Configuration file (YAML)")->required();

  usher::config::QuickSpec quick;
  auto* proxy_cmd =
      app.add_subcommand("proxy", "Proxy HTTP from one address to backends, no config file");
  proxy_cmd->add_option("--listen", quick.listen, "Address to listen on, e.g. 127.0.0.1:8080")
      ->required();
  proxy_cmd->add_option("--to", quick.to, "Backend address (repeat for each)")->required();
  proxy_cmd->add_option("--balance", quick.balance,
                        "Balancing algorithm (see usher simulate --help)");
  proxy_cmd->add_option("--workers", quick.workers, "Worker threads (default: one per core)");
  proxy_cmd->add_option("--access-log", quick.access_log,
                        "off, stdout or a file path (JSON lines)");
  proxy_cmd->add_option("--admin", quick.admin, "Admin listener: dashboard, metrics, API");
  proxy_cmd->add_option("--health-path", quick.health_path,
                        "HTTP health check path (every 1s; 2 failures remove, 2 passes return)");
  proxy_cmd->add_option("--tls-cert", quick.tls_cert, "Serve HTTPS: the certificate chain (PEM)");
  proxy_cmd->add_option("--tls-key", quick.tls_key, "Serve HTTPS: the private key (PEM)");

  usher::app::SimulateOptions sim;
  auto* sim_cmd =
      app.add_subcommand("simulate", "Compare balancing algorithms on a simulated workload");
  auto* scenario_option = sim_cmd->add_option(
      "--scenario", sim.scenario, "Built-in scenario name, a scenario YAML file, or 'list'");
  auto* replay_option =
      sim_cmd
          ->add_option("--replay", sim.replay,
                       "Replay the workload of an access log (JSON or combined) instead")
          ->excludes(scenario_option);
  sim_cmd->add_option("--servers", sim.servers, "Replay: on this many servers (default: the log's)")
      ->check(CLI::Range(1, 100000))
      ->needs(replay_option);
  sim_cmd->add_option("--speed", sim.speed, "Replay: traffic multiplier (1.5: 50% more)")
      ->check(CLI::Range(0.01, 1000.0))
      ->needs(replay_option);
  sim_cmd->add_option("--concurrency", sim.concurrency, "Replay: requests a server runs at once")
      ->check(CLI::Range(1, 100000))
      ->needs(replay_option);
  sim_cmd
      ->add_option("--duration", sim.duration_s,
                   "Replay: service time in seconds of combined-format lines")
      ->check(CLI::Range(0.000001, 86400.0))
      ->needs(replay_option);
  sim_cmd->add_option("--algorithms", sim.algorithms, "Comma-separated algorithms (default: all)")
      ->delimiter(',');
  sim_cmd->add_option("--format", sim.format, "table or json")
      ->check(CLI::IsMember({"table", "json"}));
  sim_cmd->add_option("--plot", sim.plot, "Write a PNG: latency CDF and per-server load over time");
  sim_cmd->add_option("--seed", sim.seed, "Random seed (default: the scenario's)");
  sim_cmd->add_flag("--recommend", sim.recommend, "Print the winning algorithm and why");

  usher::app::CtlOptions ctl;
  auto* ctl_cmd = app.add_subcommand("ctl",
                                     "Talk to a running usher's admin API: pools | metrics | "
                                     "reload | drain|enable|disable|remove POOL "
                                     "BACKEND | weight POOL BACKEND W | add POOL ADDRESS [WEIGHT]");
  ctl_cmd->add_option("--admin", ctl.admin, "Admin listener address (default 127.0.0.1:9900)");
  ctl_cmd->add_option("--token", ctl.token, "Bearer token (default: $USHER_ADMIN_TOKEN)");
  ctl_cmd->add_option("words", ctl.words, "What to do")->required();

  CLI11_PARSE(app, argc, argv);
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");

  if (*check_cmd) return check(config_path);
  if (*run_cmd) return run(config_path, upgrade);
  if (*proxy_cmd) return quick_proxy(quick);
  if (*sim_cmd) return usher::app::simulate(sim);
  if (*ctl_cmd) return usher::app::ctl(ctl);
  return 2;
}
