// The rules of a configuration that hold however it was made: parsed from a file, built from
// the command line (quick mode) or changed through the admin API. The file reader checks only
// form (types, known keys, syntax); everything about meaning is here, once.
#include <algorithm>
#include <set>

#include "balance/picker.h"
#include "config/config.h"

namespace usher::config {

namespace {

class Report {
 public:
  Report(const Config& config, Errors& errors) : source_(config.source), errors_(errors) {}

  // "FILE:LINE:COL: message" at the key's position, or "SOURCE: message" without one.
  void at(const Marks& marks, std::string_view key, const std::string& message) {
    errors_.add(marks.where(source_, key) + message);
  }

 private:
  const std::string& source_;
  Errors& errors_;
};

void validate_algorithm(Report& report, const Pool& pool) {
  const balance::AlgorithmInfo* info = balance::find_algorithm(pool.balance);
  if (!info) {
    std::string names;
    for (const auto& a : balance::algorithms())
      names += (names.empty() ? "" : ", ") + std::string(a.name);
    return report.at(pool.marks, "balance",
                     "unknown balance algorithm '" + pool.balance + "' (available: " + names + ")");
  }
  const std::string uses = "' (hash_key applies to ip-hash, hash and hash-bounded)";
  if (pool.hash_key_given && info->key != balance::KeySource::kHash) {
    report.at(pool.marks, "hash_key",
              "hash_key has no effect with balance '" + pool.balance + uses);
  } else if (pool.hash_key_given && pool.balance == "ip-hash" &&
             pool.hash_key.kind != HashKey::Kind::kClientIp) {
    report.at(pool.marks, "hash_key",
              "ip-hash always hashes the client address; to hash '" + pool.hash_key_text +
                  "' use balance: hash (or hash-bounded)");
  }
  if (pool.hash_balance_factor_given && pool.balance != "hash-bounded") {
    report.at(pool.marks, "hash_balance_factor",
              "hash_balance_factor has no effect with balance '" + pool.balance +
                  "' (it applies to hash-bounded only)");
  }
}

void validate_pool(Report& report, const Pool& pool) {
  validate_algorithm(report, pool);
  // A discovery file's problems are said at its own lines; a DNS name's answer comes later.
  if (pool.backends.empty() && pool.discovery_file.empty() && !pool.dns) {
    report.at(pool.marks, "backends", "pool '" + pool.name + "' has no backends");
  }
  for (const Backend& b : pool.backends) {
    if (std::string problem = weight_problem(b.weight); !problem.empty()) {
      report.at(b.marks, "weight", problem);
    }
  }
  if (pool.outlier && !pool.health) {
    report.at(pool.marks, "outlier",
              "outlier detection needs a 'health' section: ejected backends return through "
              "active checks");
  }
}

// locality_aware needs to know where this usher runs, and backends that say where they run:
// without either, every backend would be in one tier and the key would change nothing.
void validate_locality(Report& report, const Config& config, const Pool& pool) {
  if (!pool.locality_aware) return;
  if (!config.locality) {
    return report.at(pool.marks, "locality_aware",
                     "locality_aware needs the top-level 'locality: { zone, region }' that says "
                     "where this usher runs");
  }
  if (pool.dns) {
    return report.at(pool.marks, "locality_aware",
                     "locality_aware needs backends with a zone or region; DNS discovery gives "
                     "addresses only (use a discovery file, whose backends may name them)");
  }
  const bool located =
      std::any_of(pool.backends.begin(), pool.backends.end(),
                  [](const Backend& b) { return !b.zone.empty() || !b.region.empty(); });
  if (!located && pool.discovery_file.empty()) {
    report.at(pool.marks, "locality_aware",
              "locality_aware: no backend of pool '" + pool.name +
                  "' names a zone or region, so there is nothing to prefer");
  }
}

void validate_listeners(Report& report, const Config& config) {
  std::set<std::string> names;
  for (size_t i = 0; i < config.listeners.size(); ++i) {
    const Listener& l = config.listeners[i];
    if (!l.name.empty() && !names.insert(l.name).second) {
      report.at(l.marks, "name", "duplicate listener name '" + l.name + "'");
    }
    if (l.tls && !l.http2.enabled &&
        std::find(l.tls->alpn.begin(), l.tls->alpn.end(), "h2") != l.tls->alpn.end()) {
      report.at(l.http2.marks, "", "tls.alpn offers h2 but http2 is off on this listener");
    }
    for (size_t j = 0; j < i; ++j) {
      // A tcp (or http) and a udp listener may share an address: they are different sockets.
      const bool same_kind =
          (l.protocol == Protocol::kUdp) == (config.listeners[j].protocol == Protocol::kUdp);
      if (l.listen.length() && same_kind && l.listen == config.listeners[j].listen) {
        report.at(l.marks, "listen",
                  "address " + l.listen.to_string() + " is already used by another listener");
      }
    }
  }
}

// What a pool's keys mean depends on the listeners that use it: HTTP's retries, cookies and
// queues have nothing to act on behind a tcp or udp listener, and the PROXY protocol header has
// no place in front of HTTP requests on kept-alive connections.
void validate_pool_use(Report& report, const Config& config) {
  constexpr const char* kHttpOnly[] = {"retries",
                                       "sticky",
                                       "tls",
                                       "queue",
                                       "max_pending_retries",
                                       "buffer_request",
                                       "timeouts.response",
                                       "protocol",
                                       "h2_connections"};
  std::vector<bool> reported(config.pools.size());
  for (const Listener& l : config.listeners) {
    const std::string kind(protocol_name(l.protocol));
    for (const Route& route : l.routes) {
      if (route.action != Route::Action::kPool || route.pool >= config.pools.size()) continue;
      const Pool& pool = config.pools[route.pool];
      if (reported[route.pool]) continue;
      const std::string user = "pool '" + pool.name + "' serves " + kind + " listener '" +
                               (l.name.empty() ? l.listen.to_string() : l.name) + "'";
      if (l.protocol == Protocol::kHttp) {
        if (pool.proxy_protocol != ProxyProtocolVersion::kOff) {
          report.at(pool.marks, "proxy_protocol",
                    "proxy_protocol applies to pools behind tcp and udp listeners; " + user);
          reported[route.pool] = true;
        }
        continue;
      }
      for (const char* key : kHttpOnly) {
        if (pool.marks.has(key)) {
          report.at(pool.marks, key, std::string(key) + " applies to HTTP only; " + user);
          reported[route.pool] = true;
        }
      }
      if (pool.hash_key.kind != HashKey::Kind::kClientIp) {
        report.at(pool.marks, "hash_key",
                  "a " + kind + " listener hashes the client address only; " + user);
        reported[route.pool] = true;
      }
      if (l.protocol == Protocol::kUdp && pool.proxy_protocol == ProxyProtocolVersion::kV1) {
        report.at(pool.marks, "proxy_protocol",
                  "proxy_protocol v1 is for tcp (its header cannot say UDP); a udp listener's "
                  "pool takes v2; " +
                      user);
        reported[route.pool] = true;
      }
      if (l.protocol == Protocol::kUdp && pool.max_connections != 0) {
        report.at(pool.marks, "",
                  "max_connections counts connections, which udp does not have; " + user);
        reported[route.pool] = true;
      }
    }
  }
}

}  // namespace

std::string weight_problem(uint64_t weight) {
  if (weight >= kMinWeight && weight <= kMaxWeight) return {};
  return "weight must be a whole number from " + std::to_string(kMinWeight) + " to " +
         std::to_string(kMaxWeight);
}

void validate(const Config& config, Errors& errors) {
  Report report(config, errors);
  std::set<std::string> pool_names;
  for (const Pool& pool : config.pools) {
    validate_pool(report, pool);
    validate_locality(report, config, pool);
    if (!pool.name.empty() && !pool_names.insert(pool.name).second) {
      report.at(pool.marks, "name", "duplicate pool name '" + pool.name + "'");
    }
  }
  validate_listeners(report, config);
  validate_pool_use(report, config);
}

}  // namespace usher::config
