#include "admin/api.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <nlohmann/json.hpp>

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

std::string pools_json(const ApiContext& context) {
  constexpr auto relaxed = std::memory_order_relaxed;
  nlohmann::json pools = nlohmann::json::array();
  for (const proxy::PoolState* pool : context.pools) {
    nlohmann::json backends = nlohmann::json::array();
    for (uint32_t i = 0; i < pool->snapshot.backends.size(); ++i) {
      const balance::BackendLive& b = pool->live[i];
      const uint8_t state = b.admin_state.load(relaxed);
      backends.push_back({{"name", pool->config.backends[i].name},
                          {"address", pool->snapshot.backends[i].address.to_string()},
                          {"weight", pool->snapshot.backends[i].weight},
                          {"healthy", b.healthy.load(relaxed)},
                          {"state", state_name(state)},
                          {"draining", state == balance::kDraining},
                          {"active", b.active.load(relaxed)},
                          {"latency_ms", b.latency_ms.load(relaxed)},
                          {"ejected", b.ejected_until_ms.load(relaxed) != 0}});
    }
    pools.push_back({{"name", pool->config.name},
                     {"balance", pool->config.balance},
                     {"health_checks", pool->config.health.has_value()},
                     {"backends", backends}});
  }
  return nlohmann::json{{"pools", pools}}.dump(2) + "\n";
}

uint64_t wall_ms() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

// POST /api/v1/pools/POOL/backends/BACKEND/ACTION
std::string change_backend(const ApiContext& context, std::string_view method,
                           std::string_view path) {
  std::string_view rest = path.substr(std::string_view("/api/v1/pools/").size());
  size_t slash = rest.find("/backends/");
  size_t action = rest.rfind('/');
  if (slash == std::string_view::npos || action <= slash + 9)
    return error(404, "Not Found", "no such endpoint");
  std::string_view pool_name = rest.substr(0, slash);
  std::string_view backend = rest.substr(slash + 10, action - slash - 10);
  std::string_view verb = rest.substr(action + 1);
  uint8_t state = 0;
  if (verb == "drain") {
    state = balance::kDraining;
  } else if (verb == "enable" || verb == "ready") {
    state = balance::kServing;
  } else if (verb == "disable") {
    state = balance::kDisabled;
  } else {
    return error(404, "Not Found", "use .../drain, .../enable or .../disable");
  }
  if (method != "POST") return error(405, "Method Not Allowed", "use POST");
  for (proxy::PoolState* pool : context.pools) {
    if (pool->config.name != pool_name) continue;
    for (uint32_t i = 0; i < pool->snapshot.backends.size(); ++i) {
      const std::string& name = pool->config.backends[i].name;
      if (name != backend && pool->snapshot.backends[i].address.to_string() != backend) continue;
      pool->live[i].admin_state.store(state, std::memory_order_relaxed);
      const char* what = state == balance::kDraining   ? "DRAINING"
                         : state == balance::kDisabled ? "DISABLED"
                                                       : "ENABLED";
      spdlog::warn("admin: pool={} backend={} {}", pool_name, name, what);
      context.sampler.record({wall_ms(), std::string(pool_name), name, what});
      return response(200, "OK",
                      nlohmann::json{{"pool", pool_name},
                                     {"backend", name},
                                     {"state", state_name(state)},
                                     {"draining", state == balance::kDraining}}
                              .dump() +
                          "\n");
    }
    return error(404, "Not Found",
                 "pool '" + std::string(pool_name) + "' has no backend " + std::string(backend));
  }
  return error(404, "Not Found", "no pool '" + std::string(pool_name) + "'");
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
  if (path == "/metrics") {
    return response(200, "OK", metrics_page(context.metrics, context.pools, context.access_log),
                    "text/plain; version=0.0.4");
  }
  if (path == "/api/v1/pools") {
    if (method != "GET") return error(405, "Method Not Allowed", "use GET");
    return response(200, "OK", pools_json(context));
  }
  if (path == "/api/v1/series") {
    if (method != "GET") return error(405, "Method Not Allowed", "use GET");
    auto since = route::find_query(query, "since");
    uint64_t since_ms = since ? std::strtoull(std::string(*since).c_str(), nullptr, 10) : 0;
    return response(200, "OK", context.sampler.series_json(since_ms));
  }
  if (path.starts_with("/api/v1/pools/")) return change_backend(context, method, path);
  return error(404, "Not Found", "no such endpoint");
}

}  // namespace usher::admin
