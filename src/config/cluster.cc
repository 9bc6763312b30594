// The top-level `cluster` block: the Redis that several ushers share state through, and the
// health file a VRRP daemon (keepalived's track_file) watches; and the check that what needs the
// Redis (cluster-scoped rate limits, session tickets from the cluster) has one.
#include <filesystem>

#include "config/reader.h"

namespace usher::config {

namespace {

// Redis keys are binary-safe, but a prefix is also what an operator types into redis-cli.
bool valid_key_prefix(const std::string& prefix) {
  if (prefix.size() > 64) return false;
  for (unsigned char c : prefix) {
    if (c <= ' ' || c >= 0x7f) return false;
  }
  return true;
}

}  // namespace

void read_cluster(Reader& r, const YAML::Node& node, Config& config) {
  if (!r.expect_map(node, "cluster")) return;
  r.check_keys(node, {"redis", "key_prefix", "on_redis_failure", "health_file", "share_health"},
               "cluster");
  Cluster& cluster = config.cluster;
  if (node["share_health"])
    read_flag(r, node["share_health"], "share_health", cluster.share_health);
  if (node["redis"]) r.address(node["redis"], "cluster redis", cluster.redis.emplace());
  if (node["key_prefix"] && r.scalar(node["key_prefix"], "key_prefix", cluster.key_prefix) &&
      !valid_key_prefix(cluster.key_prefix)) {
    r.error(node["key_prefix"].Mark(),
            "key_prefix must be at most 64 printable characters without spaces");
  }
  if (const YAML::Node failure = node["on_redis_failure"]; failure) {
    std::string text;
    if (r.scalar(failure, "on_redis_failure", text)) {
      if (text == "local") {
        cluster.on_redis_failure = Cluster::OnRedisFailure::kLocal;
      } else if (text == "deny") {
        cluster.on_redis_failure = Cluster::OnRedisFailure::kDeny;
      } else {
        r.error(failure.Mark(), "on_redis_failure must be local or deny, not '" + text + "'");
      }
    }
  }
  if (const YAML::Node file = node["health_file"]; file) {
    std::string path;
    if (r.scalar(file, "health_file", path)) {
      path = r.beside_file(path);
      const std::filesystem::path parent = std::filesystem::path(path).parent_path();
      std::error_code ignored;
      if (path.empty() || path.back() == '/') {
        r.error(file.Mark(), "health_file must name a file");
      } else if (!parent.empty() && !std::filesystem::is_directory(parent, ignored)) {
        r.error(file.Mark(), "health_file's folder " + parent.string() + " does not exist");
      } else {
        cluster.health_file = path;
      }
    }
  }
  if ((node["key_prefix"] || node["on_redis_failure"] || cluster.share_health) && !node["redis"]) {
    r.error(node.Mark(),
            "key_prefix, on_redis_failure and share_health are for a shared Redis: add 'redis'");
  }
}

void check_cluster_uses(Reader& r, const Config& config) {
  if (config.cluster.redis) return;
  auto refuse = [&](const RateLimit& limit) {
    if (limit.scope != RateLimit::Scope::kCluster) return;
    r.errors().add(r.file() + ":" + std::to_string(limit.scope_at.line) + ":" +
                   std::to_string(limit.scope_at.column) +
                   ": rate_limit scope cluster needs a shared Redis (top level: cluster: { redis: "
                   "HOST:PORT })");
  };
  for (const Listener& listener : config.listeners) {
    if (listener.tls && listener.tls->session_tickets.cluster) {
      r.errors().add(listener.tls->marks.where(r.file(), "session_tickets.cluster") +
                     "session_tickets from the cluster need a shared Redis (top level: "
                     "cluster: { redis: HOST:PORT })");
    }
    if (listener.rate_limit) refuse(*listener.rate_limit);
    for (const Route& route : listener.routes) {
      if (route.rate_limit) refuse(*route.rate_limit);
    }
  }
}

}  // namespace usher::config
