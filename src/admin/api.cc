#include "admin/api.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <nlohmann/json.hpp>
#include <optional>

#include "admin/dashboard.h"
#include "admin/metrics_page.h"
#include "codec/http1/head_parser.h"
#include "route/fields.h"

namespace usher::admin {

namespace {

std::string response(int status, std::string_view reason, const std::string& body,
                     std::string_view type = "application/json",
                     std::string_view extra_headers = {}) {
  return "HTTP/1.1 " + std::to_string(status) + " " + std::string(reason) +
         "\r\nContent-Type: " + std::string(type) +
         "\r\nContent-Length: " + std::to_string(body.size()) + "\r\nCache-Control: no-store" +
         std::string(extra_headers) + "\r\nConnection: close\r\n\r\n" + body;
}

std::string error(int status, std::string_view reason, const std::string& message) {
  return response(status, reason, nlohmann::json{{"error", message}}.dump() + "\n");
}

// Compares every byte, so the time taken does not tell how long a matching prefix was.
bool same_secret(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

bool authorized(const ApiContext& context, const http1::RequestHead& request) {
  if (context.token.empty()) return true;
  for (const http1::Header& h : request.headers) {
    if (!http1::iequals(h.name, "authorization")) continue;
    std::string_view value = h.value;
    if (value.size() > 7 && http1::iequals(value.substr(0, 7), "bearer ")) {
      return same_secret(value.substr(7), context.token);
    }
  }
  return false;
}

const char* state_name(uint8_t state) {
  switch (state) {
    case balance::kDraining:
      return "draining";
    case balance::kDisabled:
      return "disabled";
    default:
      return "serving";
  }
}

// A locality-aware pool's tiers now: where this usher runs, and per tier its weights and the
// share of requests it takes (below 1 for the first tier: it spills).
std::optional<nlohmann::json> locality_json(const proxy::PoolState& pool) {
  const auto loads = pool.balancer().tier_loads(pool.live);
  if (!loads || !pool.config.locality) return std::nullopt;
  nlohmann::json tiers = nlohmann::json::array();
  for (size_t t = 0; t < balance::kTiers; ++t) {
    const balance::TierLoad& load = (*loads)[t];
    if (load.backends == 0) continue;
    tiers.push_back({{"tier", balance::tier_name(static_cast<balance::Tier>(t))},
                     {"backends", load.backends},
                     {"weight", load.weight},
                     {"healthy_weight", load.healthy_weight},
                     {"share", load.share}});
  }
  return nlohmann::json{{"zone", pool.config.locality->zone},
                        {"region", pool.config.locality->region},
                        {"tiers", tiers}};
}

std::string pools_json(const ApiContext& context, const proxy::Generation& generation) {
  constexpr auto relaxed = std::memory_order_relaxed;
  nlohmann::json pools = nlohmann::json::array();
  for (const auto& pool : generation.pools) {
    nlohmann::json backends = nlohmann::json::array();
    pool->for_each_member([&](uint32_t i) {
      const balance::BackendLive& b = pool->live[i];
      const uint8_t state = b.admin_state.load(relaxed);
      backends.push_back({{"name", pool->slot(i).name},
                          {"address", pool->slot(i).address.to_string()},
                          {"weight", pool->weight(i)},
                          {"healthy", b.healthy.load(relaxed)},
                          {"state", state_name(state)},
                          {"draining", state == balance::kDraining},
                          {"active", b.active.load(relaxed)},
                          {"latency_ms", b.latency_ms.load(relaxed)},
                          {"ejected", b.ejected_until_ms.load(relaxed) != 0}});
      if (!pool->slot(i).zone.empty()) backends.back()["zone"] = pool->slot(i).zone;
      if (!pool->slot(i).region.empty()) backends.back()["region"] = pool->slot(i).region;
      // The last second's rates and latencies, as the dashboard charts them.
      if (auto p = context.sampler.latest(pool->backend_id(i))) {
        backends.back()["requests_per_second"] = p->requests_per_second;
        backends.back()["errors_per_second"] = p->errors_per_second;
        backends.back()["p50_ms"] = p->p50_ms;
        backends.back()["p99_ms"] = p->p99_ms;
      }
    });
    pools.push_back({{"name", pool->config.name},
                     {"balance", pool->config.balance},
                     {"health_checks", pool->config.health.has_value()},
                     {"backends", backends}});
    if (auto locality = locality_json(*pool)) pools.back()["locality"] = std::move(*locality);
    nlohmann::json picks = nlohmann::json::array();
    for (const proxy::RecentPicks::Entry& e : pool->recent_picks.newest_first()) {
      picks.push_back({{"unix_ms", e.unix_ms}, {"pick", e.text}});
    }
    pools.back()["recent_picks"] = std::move(picks);
  }
  return nlohmann::json{{"pools", pools}}.dump(2) + "\n";
}

proxy::PoolState* find_pool(const proxy::Generation& generation, std::string_view name) {
  for (const auto& pool : generation.pools) {
    if (pool->config.name == name) return pool.get();
  }
  return nullptr;
}

std::string backend_json(const proxy::PoolState& pool, uint32_t slot) {
  const uint8_t state = pool.live[slot].admin_state.load(std::memory_order_relaxed);
  return nlohmann::json{{"pool", pool.config.name},
                        {"backend", pool.slot(slot).name},
                        {"address", pool.slot(slot).address.to_string()},
                        {"weight", pool.weight(slot)},
                        {"state", state_name(state)},
                        {"draining", state == balance::kDraining}}
             .dump() +
         "\n";
}

std::optional<uint32_t> number(std::string_view query, std::string_view name) {
  auto text = route::find_query(query, name);
  if (!text || text->empty()) return std::nullopt;
  uint32_t value = 0;
  auto [end, ec] = std::from_chars(text->data(), text->data() + text->size(), value);
  if (ec != std::errc() || end != text->data() + text->size()) return std::nullopt;
  return value;
}

// POST /api/v1/pools/POOL/backends?address=A[&weight=W][&name=N]
std::string add_backend(const ApiContext& context, proxy::PoolState& pool, std::string_view query) {
  auto address_text = route::find_query(query, "address");
  if (!address_text) return error(400, "Bad Request", "give ?address=HOST:PORT");
  auto address = Address::parse(*address_text);
  if (!address) return error(400, "Bad Request", address.error().message);
  const bool weight_given = route::find_query(query, "weight").has_value();
  const std::optional<uint32_t> weight = weight_given ? number(query, "weight") : 1u;
  if (!weight) return error(400, "Bad Request", "weight must be a whole number");
  if (std::string problem = config::weight_problem(*weight); !problem.empty()) {
    return error(400, "Bad Request", problem);
  }
  std::string name(route::find_query(query, "name").value_or(std::string_view()));
  auto slot = pool.add(*address, name, *weight);
  if (!slot) return error(409, "Conflict", slot.error().message);
  spdlog::warn("admin: pool={} backend={} ADDED ({}, weight {})", pool.config.name,
               pool.slot(*slot).name, address->to_string(), *weight);
  context.sampler.record(pool.config.name, pool.slot(*slot).name, "ADDED");
  return response(201, "Created", backend_json(pool, *slot));
}

// POST /api/v1/pools/POOL/backends/BACKEND/ACTION[?value=W]
std::string change_backend(const ApiContext& context, proxy::PoolState& pool,
                           std::string_view backend, std::string_view verb,
                           std::string_view query) {
  const uint32_t slot = pool.find(backend);
  if (slot == balance::kNoBackend) {
    return error(404, "Not Found",
                 "pool '" + pool.config.name + "' has no backend " + std::string(backend));
  }
  const std::string name = pool.slot(slot).name;
  std::string what;
  if (verb == "remove") {
    auto removed = pool.remove(slot);
    if (!removed) return error(409, "Conflict", removed.error().message);
    what = "REMOVED";
  } else if (verb == "weight") {
    auto value = number(query, "value");
    if (!value) return error(400, "Bad Request", "give ?value=WEIGHT");
    auto changed = pool.set_weight(slot, *value);
    if (!changed) return error(400, "Bad Request", changed.error().message);
    what = "WEIGHT " + std::to_string(*value);
  } else {
    const uint8_t state = verb == "drain"     ? balance::kDraining
                          : verb == "disable" ? balance::kDisabled
                                              : balance::kServing;
    pool.live[slot].admin_state.store(state, std::memory_order_release);
    what = state == balance::kDraining   ? "DRAINING"
           : state == balance::kDisabled ? "DISABLED"
                                         : "ENABLED";
  }
  spdlog::warn("admin: pool={} backend={} {}", pool.config.name, name, what);
  context.sampler.record(pool.config.name, name, what);
  return response(
      200, "OK",
      verb == "remove"
          ? nlohmann::json{{"pool", pool.config.name}, {"backend", name}, {"state", "removed"}}
                    .dump() +
                "\n"
          : backend_json(pool, slot));
}

// /api/v1/pools/POOL/backends[/BACKEND/ACTION]
std::string pool_endpoint(const ApiContext& context, const proxy::Generation& generation,
                          std::string_view method, std::string_view path, std::string_view query) {
  std::string_view rest = path.substr(std::string_view("/api/v1/pools/").size());
  const size_t slash = rest.find('/');
  proxy::PoolState* pool = find_pool(generation, rest.substr(0, slash));
  if (!pool) return error(404, "Not Found", "no pool '" + std::string(rest.substr(0, slash)) + "'");
  rest = slash == std::string_view::npos ? std::string_view() : rest.substr(slash);
  if (rest == "/backends") {
    if (method != "POST") return error(405, "Method Not Allowed", "use POST to add a backend");
    return add_backend(context, *pool, query);
  }
  if (!rest.starts_with("/backends/")) return error(404, "Not Found", "no such endpoint");
  rest.remove_prefix(std::string_view("/backends/").size());
  const size_t action = rest.rfind('/');
  if (action == std::string_view::npos || action == 0)
    return error(404, "Not Found", "no such endpoint");
  const std::string_view backend = rest.substr(0, action);
  std::string_view verb = rest.substr(action + 1);
  if (verb == "ready") verb = "enable";
  constexpr std::string_view kVerbs[] = {"drain", "enable", "disable", "remove", "weight"};
  if (std::find(std::begin(kVerbs), std::end(kVerbs), verb) == std::end(kVerbs)) {
    return error(404, "Not Found", "use .../drain, enable, disable, remove or weight?value=N");
  }
  if (method != "POST") return error(405, "Method Not Allowed", "use POST");
  return change_backend(context, *pool, backend, verb, query);
}

// POST /api/v1/reload: 200 with the generation now served, or 400 with every problem.
std::string reload(const ApiContext& context) {
  std::vector<std::string> problems = context.control.reload();
  if (!problems.empty()) {
    return response(400, "Bad Request",
                    nlohmann::json{{"error", "configuration refused; the running one stays"},
                                   {"problems", problems}}
                            .dump(2) +
                        "\n");
  }
  const uint64_t number = context.control.generation()->number;
  return response(200, "OK", nlohmann::json{{"generation", number}}.dump() + "\n");
}

}  // namespace

std::string respond(const ApiContext& context, const http1::RequestHead& request, bool draining) {
  std::string_view path, query;
  route::split_target(request.target, path, query);
  const std::string_view method = request.method_text;
  if (path == "/livez") return response(200, "OK", "ok\n", "text/plain");
  if (path == "/readyz") {
    return draining ? response(503, "Service Unavailable", "draining\n", "text/plain")
                    : response(200, "OK", "ready\n", "text/plain");
  }
  if (path == "/" || path == "/index.html") {
    return response(200, "OK", std::string(dashboard_html()), "text/html; charset=utf-8",
                    "\r\nContent-Security-Policy: default-src 'self'; style-src 'self' "
                    "'unsafe-inline'; script-src 'self' 'unsafe-inline'");
  }
  const bool protected_path = path == "/metrics" || path.starts_with("/api/");
  if (!protected_path) return error(404, "Not Found", "no such endpoint");
  if (!authorized(context, request)) {
    return response(401, "Unauthorized",
                    nlohmann::json{{"error", "missing or wrong bearer token"}}.dump() + "\n",
                    "application/json", "\r\nWWW-Authenticate: Bearer realm=\"usher\"");
  }
  const std::shared_ptr<const proxy::Generation> generation = context.control.generation();
  if (path == "/metrics") {
    return response(200, "OK",
                    metrics_page(context.metrics, *generation, context.control, context.access_log),
                    "text/plain; version=0.0.4");
  }
  if (path == "/api/v1/pools") {
    if (method != "GET") return error(405, "Method Not Allowed", "use GET");
    return response(200, "OK", pools_json(context, *generation));
  }
  if (path == "/api/v1/reload") {
    if (method != "POST") return error(405, "Method Not Allowed", "use POST");
    return reload(context);
  }
  if (path == "/api/v1/series") {
    if (method != "GET") return error(405, "Method Not Allowed", "use GET");
    auto since = route::find_query(query, "since");
    uint64_t since_ms = since ? std::strtoull(std::string(*since).c_str(), nullptr, 10) : 0;
    return response(200, "OK", context.sampler.series_json(since_ms));
  }
  if (path.starts_with("/api/v1/pools/")) {
    return pool_endpoint(context, *generation, method, path, query);
  }
  return error(404, "Not Found", "no such endpoint");
}

}  // namespace usher::admin
