// Quick mode's configuration, built from the command line's values and held to the same rules
// as a file's (validate()).
#include "config/config.h"

namespace usher::config {

namespace {

// The value's problem as "command line: --OPTION: message".
void problem(Errors& errors, std::string_view option, const std::string& message) {
  errors.add("command line: --" + std::string(option) + ": " + message);
}

}  // namespace

Expected<Config> quick_config(const QuickSpec& spec, Errors& errors) {
  Config config;
  config.source = "command line";
  config.workers = spec.workers;
  if (std::string p = set_access_log_target(spec.access_log, config.access_log); !p.empty()) {
    problem(errors, "access-log", p);
  }
  if (!spec.admin.empty()) {
    auto admin = Address::parse(spec.admin);
    admin ? void(config.admin = *admin) : problem(errors, "admin", admin.error().message);
  }
  Pool pool;
  pool.name = "quick";
  pool.balance = spec.balance;
  for (const std::string& to : spec.to) {
    auto address = Address::parse(to);
    if (!address) {
      problem(errors, "to", address.error().message);
      continue;
    }
    pool.backends.push_back({*address, 1, address->to_string(), {}, {}, {}});
  }
  if (!spec.health_path.empty()) {
    if (spec.health_path[0] != '/') problem(errors, "health-path", "must start with /");
    HealthCheck check;
    check.path = spec.health_path;
    check.interval = 1s;
    check.timeout = 500ms;
    check.rise = check.fall = 2;
    pool.health = check;
  }
  config.pools.push_back(std::move(pool));
  Listener listener;
  listener.name = "quick";
  auto listen = Address::parse(spec.listen);
  listen ? void(listener.listen = *listen) : problem(errors, "listen", listen.error().message);
  listener.routes.push_back(default_route(config.pools[0], 0));
  if (spec.tls_cert.empty() != spec.tls_key.empty()) {
    problem(errors, spec.tls_cert.empty() ? "tls-cert" : "tls-key",
            "HTTPS needs both --tls-cert and --tls-key");
  } else if (!spec.tls_cert.empty()) {
    listener.tls.emplace();
    listener.tls->certificates.push_back({spec.tls_cert, spec.tls_key, {}, {}});
  }
  config.listeners.push_back(std::move(listener));
  validate(config, errors);
  if (!errors.messages.empty()) return Error{errors.messages.front()};
  return config;
}

}  // namespace usher::config
