// A pool's keys: its backends, balancing, health checks, retries, timeouts, stickiness and
// outlier detection (the top level and listeners are read in load.cc and routes.cc).
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <string>

#include "config/config.h"
#include "config/reader.h"

namespace usher::config {

namespace {
void read_factor(Reader& r, const YAML::Node& node, double& out) {
  std::string text;
  if (!r.scalar(node, "hash_balance_factor", text)) return;
  char* end = nullptr;
  double value = std::strtod(text.c_str(), &end);
  if (text.empty() || *end != '\0' || !(value > 1.0) || value > 100) {
    return r.error(node.Mark(),
                   "hash_balance_factor must be a number above 1 and at most 100 "
                   "(e.g. 1.25), not '" +
                       text + "'");
  }
  out = value;
}

// hash_key and hash_balance_factor only mean something to the algorithms that use them; set
// elsewhere they would be ignored in silence, so they are errors.
void read_expect_status(Reader& r, const YAML::Node& node, HealthCheck& out) {
  std::string text;
  if (!r.scalar(node, "expect_status", text)) return;
  int low = 0, high = 0;
  char dash = 0, extra = 0;
  int fields = std::sscanf(text.c_str(), "%d%c%d%c", &low, &dash, &high, &extra);
  if (fields == 1) high = low;
  bool ok =
      (fields == 1 || (fields == 3 && dash == '-')) && low >= 100 && high <= 599 && low <= high;
  if (!ok)
    return r.error(node.Mark(),
                   "expect_status must be a status (200) or a range (200-399), not '" + text + "'");
  out.expect_status_min = low;
  out.expect_status_max = high;
}

HealthCheck read_health(Reader& r, const YAML::Node& node) {
  HealthCheck check;
  if (!r.expect_map(node, "health")) return check;
  r.check_keys(node,
               {"type", "path", "host", "expect_status", "expect_body", "interval", "timeout",
                "rise", "fall", "send", "expect", "query"},
               "health");
  std::string type = "http";
  if (node["type"] && r.scalar(node["type"], "type", type)) {
    if (type == "tcp") {
      check.type = HealthCheck::Type::kTcp;
    } else if (type == "udp") {
      check.type = HealthCheck::Type::kUdp;
    } else if (type == "dns") {
      check.type = HealthCheck::Type::kDns;
    } else if (type != "http") {
      r.error(node["type"].Mark(),
              "unknown health check type '" + type + "' (http, tcp, udp or dns)");
    }
  }
  read_health_l4(r, node, check);
  if (node["path"] && r.scalar(node["path"], "path", check.path) && check.path.rfind('/', 0) != 0) {
    r.error(node["path"].Mark(), "health path must start with '/'");
  }
  if (node["host"]) r.scalar(node["host"], "host", check.host);
  if (node["expect_body"]) r.scalar(node["expect_body"], "expect_body", check.expect_body);
  if (node["expect_status"]) read_expect_status(r, node["expect_status"], check);
  if (node["interval"]) r.duration(node["interval"], "interval", check.interval);
  if (node["timeout"]) r.duration(node["timeout"], "timeout", check.timeout);
  for (auto [key, field] : {std::pair{"rise", &check.rise}, std::pair{"fall", &check.fall}}) {
    if (node[key]) r.unsigned_number(node[key], key, 1, 100, *field);
  }
  return check;
}

void read_number(Reader& r, const YAML::Node& node, const char* what, double max, double& out) {
  std::string text;
  if (!r.scalar(node, what, text)) return;
  if (!text.empty() && text.back() == '%') text.pop_back();
  char* end = nullptr;
  double value = std::strtod(text.c_str(), &end);
  if (text.empty() || *end != '\0' || value < 0 || value > max) {
    return r.error(node.Mark(), std::string(what) + " must be a number from 0 to " +
                                    std::to_string(static_cast<int>(max)) + ", not '" + text + "'");
  }
  out = value;
}

Outlier read_outlier(Reader& r, const YAML::Node& node) {
  Outlier outlier;
  if (!r.expect_map(node, "outlier")) return outlier;
  r.check_keys(node, {"consecutive_failures", "base_ejection", "max_ejection_percent"}, "outlier");
  if (node["consecutive_failures"]) {
    r.unsigned_number(node["consecutive_failures"], "consecutive_failures", 1, 1000,
                      outlier.consecutive_failures);
  }
  if (node["base_ejection"])
    r.duration(node["base_ejection"], "base_ejection", outlier.base_ejection);
  if (node["max_ejection_percent"]) {
    read_number(r, node["max_ejection_percent"], "max_ejection_percent", 100,
                outlier.max_ejection_percent);
  }
  return outlier;
}

Sticky read_sticky(Reader& r, const YAML::Node& node) {
  Sticky sticky;
  if (!r.expect_map(node, "sticky")) return sticky;
  r.check_keys(node, {"cookie", "mode", "max_age", "secret"}, "sticky");
  if (!node["cookie"]) {
    r.error(node.Mark(), "sticky needs a 'cookie' name");
  } else if (r.scalar(node["cookie"], "cookie", sticky.cookie) && !is_cookie_name(sticky.cookie)) {
    r.error(node["cookie"].Mark(), "'" + sticky.cookie + "' is not a valid cookie name");
  }
  std::string mode = "insert";
  if (node["mode"] && r.scalar(node["mode"], "mode", mode)) {
    if (mode == "prefix") {
      sticky.mode = Sticky::Mode::kPrefix;
    } else if (mode != "insert") {
      r.error(node["mode"].Mark(), "unknown sticky mode '" + mode + "' (insert or prefix)");
    }
  }
  if (node["max_age"]) r.duration(node["max_age"], "max_age", sticky.max_age);
  if (node["secret"]) r.scalar(node["secret"], "secret", sticky.secret);
  return sticky;
}

}  // namespace

Pool read_pool(Reader& r, const YAML::Node& node) {
  Pool pool;
  pool.marks.set("", Reader::position(node));
  if (!r.expect_map(node, "a pool")) return pool;
  for (const char* key :
       {"name", "balance", "hash_key", "hash_balance_factor", "backends", "outlier", "retries",
        "sticky", "tls", "queue", "max_pending_retries", "buffer_request", "proxy_protocol",
        "discovery", "locality_aware", "protocol", "h2_connections"}) {
    if (node[key]) pool.marks.set(key, Reader::position(node[key]));
  }
  if (node["timeouts"] && node["timeouts"].IsMap() && node["timeouts"]["response"]) {
    pool.marks.set("timeouts.response", Reader::position(node["timeouts"]["response"]));
  }
  r.check_keys(node,
               {"name",
                "balance",
                "hash_key",
                "hash_balance_factor",
                "slow_start",
                "backends",
                "timeouts",
                "health",
                "retries",
                "panic_threshold",
                "outlier",
                "sticky",
                "tls",
                "max_connections",
                "queue",
                "max_pending_retries",
                "buffer_request",
                "proxy_protocol",
                "discovery",
                "locality_aware",
                "protocol",
                "h2_connections"},
               "pool");
  if (!node["name"] || !r.scalar(node["name"], "pool name", pool.name)) {
    if (!node["name"]) r.error(node.Mark(), "pool needs a 'name'");
  }
  if (node["balance"]) r.scalar(node["balance"], "balance", pool.balance);
  pool.hash_key_given = node["hash_key"].IsDefined();
  if (pool.hash_key_given) {
    read_hash_key(r, node["hash_key"], "hash_key", pool.hash_key);
    if (node["hash_key"].IsScalar()) pool.hash_key_text = node["hash_key"].Scalar();
  }
  pool.hash_balance_factor_given = node["hash_balance_factor"].IsDefined();
  if (pool.hash_balance_factor_given)
    read_factor(r, node["hash_balance_factor"], pool.hash_balance_factor);
  if (node["slow_start"]) r.duration(node["slow_start"], "slow_start", pool.slow_start);
  const YAML::Node backends = node["backends"];
  if (backends && r.expect_sequence(backends, "backends")) {
    for (const auto& b : backends) pool.backends.push_back(read_backend(r, b));
  }
  if (node["discovery"]) read_pool_discovery(r, node["discovery"], pool);
  if (node["timeouts"]) pool.timeouts = read_pool_timeouts(r, node["timeouts"], pool.timeouts);
  if (node["health"]) pool.health = read_health(r, node["health"]);
  if (node["retries"]) pool.retries = read_retries(r, node["retries"], Retries{});
  if (node["panic_threshold"]) {
    read_number(r, node["panic_threshold"], "panic_threshold", 100, pool.panic_percent);
  }
  if (node["sticky"]) pool.sticky = read_sticky(r, node["sticky"]);
  if (node["outlier"]) pool.outlier = read_outlier(r, node["outlier"]);
  if (node["tls"]) pool.tls = read_pool_tls(r, node["tls"]);
  if (node["protocol"]) {
    std::string protocol;
    if (r.scalar(node["protocol"], "protocol", protocol)) {
      if (protocol == "h2") {
        pool.h2 = true;
      } else if (protocol != "http1") {
        r.error(node["protocol"].Mark(),
                "protocol: unknown '" + protocol + "' (available: http1, h2)");
      }
    }
  }
  if (node["h2_connections"]) {
    unsigned connections = pool.h2_connections;
    r.unsigned_number(node["h2_connections"], "h2_connections", 1, 64, connections);
    pool.h2_connections = connections;
  }
  read_pool_protection(r, node, pool);
  if (node["proxy_protocol"]) read_pool_proxy_protocol(r, node["proxy_protocol"], pool);
  if (node["locality_aware"])
    read_flag(r, node["locality_aware"], "locality_aware", pool.locality_aware);
  return pool;
}

Backend read_backend(Reader& r, const YAML::Node& node) {
  Backend backend;
  if (node.IsScalar()) {
    r.address(node, "backend address", backend.address);
    backend.name = backend.address.to_string();
    return backend;
  }
  backend.marks.set("", Reader::position(node));
  if (!r.expect_map(node, "a backend")) return backend;
  r.check_keys(node, {"address", "weight", "name", "zone", "region"}, "backend");
  if (node["name"]) r.scalar(node["name"], "backend name", backend.name);
  if (node["zone"]) read_locality_name(r, node["zone"], "zone", backend.zone);
  if (node["region"]) read_locality_name(r, node["region"], "region", backend.region);
  if (!node["address"]) {
    r.error(node.Mark(), "backend needs an 'address'");
  } else {
    r.address(node["address"], "backend address", backend.address);
  }
  if (node["weight"]) {
    backend.marks.set("weight", Reader::position(node["weight"]));
    r.unsigned_number(node["weight"], "weight", kMinWeight, kMaxWeight, backend.weight);
  }
  if (backend.name.empty()) backend.name = backend.address.to_string();
  return backend;
}

std::string locality_name_problem(std::string_view name, std::string_view what) {
  const bool fits =
      !name.empty() && name.size() <= 64 && std::all_of(name.begin(), name.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
      });
  if (fits) return {};
  return std::string(what) + " must be 1 to 64 letters, digits, '.', '_' or '-', not '" +
         std::string(name) + "'";
}

void read_locality_name(Reader& r, const YAML::Node& node, const char* what, std::string& out) {
  std::string text;
  if (!r.scalar(node, what, text)) return;
  if (std::string problem = locality_name_problem(text, what); !problem.empty()) {
    return r.error(node.Mark(), problem);
  }
  out = std::move(text);
}

void read_hash_key(Reader& r, const YAML::Node& node, const char* what, HashKey& out) {
  std::string text;
  if (!r.scalar(node, what, text)) return;
  auto named = [&](std::string_view prefix, HashKey::Kind kind) {
    if (text.rfind(prefix, 0) != 0) return false;
    out = {kind, text.substr(prefix.size())};
    if (out.name.empty())
      r.error(node.Mark(), std::string(what) + " '" + text + "' needs a name after the colon");
    return true;
  };
  if (text == "client-ip") {
    out = {HashKey::Kind::kClientIp, {}};
  } else if (text == "uri") {
    out = {HashKey::Kind::kUri, {}};
  } else if (!named("header:", HashKey::Kind::kHeader) &&
             !named("cookie:", HashKey::Kind::kCookie) && !named("query:", HashKey::Kind::kQuery)) {
    r.error(node.Mark(), std::string("unknown ") + what + " '" + text +
                             "' (client-ip, uri, header:NAME, cookie:NAME or query:NAME)");
  }
}

PoolTimeouts read_pool_timeouts(Reader& r, const YAML::Node& node, PoolTimeouts base) {
  PoolTimeouts out = base;
  if (!r.expect_map(node, "timeouts")) return out;
  r.check_keys(node, {"connect", "response"}, "timeouts");
  if (node["connect"]) r.duration(node["connect"], "connect", out.connect);
  if (node["response"]) r.duration(node["response"], "response", out.response);
  return out;
}

Retries read_retries(Reader& r, const YAML::Node& node, Retries base) {
  Retries retries = std::move(base);
  if (!r.expect_map(node, "retries")) return retries;
  r.check_keys(node,
               {"attempts", "per_try_timeout", "backoff", "statuses", "budget", "budget_floor"},
               "retries");
  if (node["attempts"]) r.unsigned_number(node["attempts"], "attempts", 1, 10, retries.attempts);
  if (node["per_try_timeout"])
    r.duration(node["per_try_timeout"], "per_try_timeout", retries.per_try_timeout);
  if (node["backoff"]) r.duration(node["backoff"], "backoff", retries.backoff);
  if (const YAML::Node statuses = node["statuses"];
      statuses && r.expect_sequence(statuses, "statuses")) {
    retries.statuses.clear();
    for (const auto& status : statuses) {
      unsigned code = 0;
      r.unsigned_number(status, "a retried status", 500, 599, code);
      retries.statuses.push_back(static_cast<int>(code));
    }
  }
  if (node["budget"]) read_number(r, node["budget"], "budget", 100, retries.budget_percent);
  if (node["budget_floor"])
    read_number(r, node["budget_floor"], "budget_floor", 10'000, retries.budget_floor_per_second);
  return retries;
}

void reject_pool_only_retry_keys(Reader& r, const YAML::Node& node, const std::string& pool) {
  if (!node.IsMap()) return;  // read_retries reports it
  for (const char* key : {"budget", "budget_floor"}) {
    if (node[key]) {
      r.error(node[key].Mark(), std::string("retries.") + key +
                                    " is the pool's, shared by all its routes: set it in pool '" +
                                    pool + "'");
    }
  }
}

}  // namespace usher::config
