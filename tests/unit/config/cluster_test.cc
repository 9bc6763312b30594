// Reading the top-level `cluster` block and rate limits' `scope`.
#include <gtest/gtest.h>

#include <string>

#include "config/config.h"

namespace usher::config {
namespace {

std::string with(const std::string& root, const std::string& rate = "") {
  return root +
         "listeners:\n  - name: web\n    listen: 127.0.0.1:8080\n    routes:\n      - pool: p\n" +
         rate + "pools:\n  - name: p\n    backends: [127.0.0.1:9001]\n";
}

std::vector<std::string> errors_of(const std::string& text) {
  Errors errors;
  load_string(text, "usher.yaml", errors);
  return errors.messages;
}

TEST(ClusterConfig, ReadsRedisPrefixFailureModeAndHealthFile) {
  Errors errors;
  auto config = load_string(
      with("cluster:\n  redis: 127.0.0.1:6379\n  key_prefix: 'shop:'\n  on_redis_failure: deny\n"
           "  health_file: /tmp/usher-health\n",
           "        rate_limit: { key: client-ip, rate: 5/s, scope: cluster }\n"),
      "usher.yaml", errors);
  ASSERT_TRUE(config.ok()) << errors.messages.at(0);
  const Cluster& c = config->cluster;
  ASSERT_TRUE(c.redis.has_value());
  EXPECT_EQ(c.redis->to_string(), "127.0.0.1:6379");
  EXPECT_EQ(c.key_prefix, "shop:");
  EXPECT_EQ(c.on_redis_failure, Cluster::OnRedisFailure::kDeny);
  EXPECT_EQ(c.health_file, "/tmp/usher-health");
  const RateLimit& limit = *config->listeners[0].routes[0].rate_limit;
  EXPECT_EQ(limit.scope, RateLimit::Scope::kCluster);
}

TEST(ClusterConfig, DefaultsAreOnItsOwnWithLocalLimits) {
  Errors errors;
  auto config = load_string(with("", "        rate_limit: { rate: 5/s }\n"), "usher.yaml", errors);
  ASSERT_TRUE(config.ok()) << errors.messages.at(0);
  EXPECT_FALSE(config->cluster.redis.has_value());
  EXPECT_EQ(config->cluster.key_prefix, "usher:");
  EXPECT_EQ(config->cluster.on_redis_failure, Cluster::OnRedisFailure::kLocal);
  EXPECT_EQ(config->listeners[0].routes[0].rate_limit->scope, RateLimit::Scope::kLocal);
}

TEST(ClusterConfig, ClusterScopeWithoutRedisIsAnErrorWhereItIsWritten) {
  const auto errors = errors_of(with("", "        rate_limit: { rate: 5/s, scope: cluster }\n"));
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].rfind("usher.yaml:6:", 0), 0u) << errors[0];
  EXPECT_NE(errors[0].find("cluster: { redis"), std::string::npos) << errors[0];
}

TEST(ClusterConfig, MistakesAreErrors) {
  EXPECT_EQ(errors_of(with("cluster: { redis: 127.0.0.1:6379, on_redis_failure: maybe }\n")).size(),
            1u);
  EXPECT_EQ(errors_of(with("cluster: { key_prefix: 'a:' }\n")).size(), 1u);
  EXPECT_EQ(errors_of(with("cluster: { redis: 127.0.0.1:6379, key_prefix: 'a b' }\n")).size(), 1u);
  EXPECT_EQ(errors_of(with("cluster: { redis: redis.internal:6379 }\n")).size(), 1u);
  EXPECT_EQ(errors_of(with("cluster: { health_file: /nonexistent-usher/health }\n")).size(), 1u);
  EXPECT_EQ(errors_of(with("cluster: { redis: 127.0.0.1:6379, gossip: true }\n")).size(), 1u);
  EXPECT_EQ(errors_of(with("", "        rate_limit: { rate: 5/s, scope: planet }\n")).size(), 1u);
}

}  // namespace
}  // namespace usher::config
