// Reading the protection settings: every value as written, every mistake at FILE:LINE:COL.
#include <gtest/gtest.h>

#include <string>

#include "config/config.h"

namespace usher::config {
namespace {

std::string with(const std::string& listener, const std::string& pool = "",
                 const std::string& root = "") {
  return "listeners:\n  - listen: 127.0.0.1:8080\n" + listener +
         "    routes:\n      - pool: p\npools:\n  - name: p\n    backends: [127.0.0.1:9001]\n" +
         pool + root;
}

Expected<Config> load(const std::string& text, Errors& errors) {
  return load_string(text, "usher.yaml", errors);
}

using Messages = std::vector<std::string>;

Messages errors_of(const std::string& text) {
  Errors errors;
  load(text, errors);
  return errors.messages;
}

TEST(ProtectConfig, ListenerLimitsListsAndRate) {
  Errors errors;
  auto config = load(with("    allow: [10.0.0.0/8, '::1']\n    deny: [10.1.0.0/16]\n"
                          "    max_connections: 500\n    max_connections_per_client: 20\n"
                          "    rate_limit: { key: 'header:X-Api-Key', rate: 300/m }\n"),
                     errors);
  ASSERT_TRUE(config.ok()) << errors.messages.at(0);
  const Listener& l = config->listeners[0];
  EXPECT_EQ(l.ip.allow.size(), 2u);
  EXPECT_EQ(l.ip.deny.size(), 1u);
  EXPECT_TRUE(l.ip.allow[0].contains(IpBytes::from_text("10.2.3.4")));
  EXPECT_EQ(l.max_connections, 500u);
  EXPECT_EQ(l.max_connections_per_client, 20u);
  ASSERT_TRUE(l.rate_limit);
  EXPECT_EQ(l.rate_limit->key.kind, HashKey::Kind::kHeader);
  EXPECT_EQ(l.rate_limit->key.name, "X-Api-Key");
  EXPECT_DOUBLE_EQ(l.rate_limit->per_second, 5.0);
  EXPECT_EQ(l.rate_limit->burst, 300u);  // the count as written
}

TEST(ProtectConfig, RouteRateLimitDefaultsToTheClientAddress) {
  Errors errors;
  auto config = load(
      "listeners:\n  - listen: 127.0.0.1:8080\n    routes:\n"
      "      - pool: p\n        rate_limit: { rate: 0.5/s, burst: 4 }\n        deny: [127.0.0.3]\n"
      "        idempotent: true\n"
      "pools:\n  - name: p\n    backends: [127.0.0.1:9001]\n",
      errors);
  ASSERT_TRUE(config.ok()) << errors.messages.at(0);
  const Route& r = config->listeners[0].routes[0];
  ASSERT_TRUE(r.rate_limit);
  EXPECT_EQ(r.rate_limit->key.kind, HashKey::Kind::kClientIp);
  EXPECT_DOUBLE_EQ(r.rate_limit->per_second, 0.5);
  EXPECT_EQ(r.rate_limit->burst, 4u);
  EXPECT_EQ(r.ip.deny.size(), 1u);
  EXPECT_TRUE(r.idempotent);
}

TEST(ProtectConfig, PoolLimitsQueueBreakerAndBuffering) {
  Errors errors;
  auto config = load(with("",
                          "    max_connections: 2\n    queue: { max: 10, timeout: 200ms }\n"
                          "    max_pending_retries: 3\n    buffer_request: 64KiB\n",
                          "limits:\n  min_body_rate: { bytes_per_second: 1KiB, window: 5s }\n"),
                     errors);
  ASSERT_TRUE(config.ok()) << errors.messages.at(0);
  const Pool& p = config->pools[0];
  EXPECT_EQ(p.max_connections, 2u);
  EXPECT_EQ(p.queue.max, 10u);
  EXPECT_EQ(p.queue.timeout, Millis(200));
  EXPECT_EQ(p.max_pending_retries, 3u);
  EXPECT_EQ(p.buffer_request, 64u * 1024);
  EXPECT_EQ(config->limits.min_body_rate.bytes_per_second, 1024u);
  EXPECT_EQ(config->limits.min_body_rate.window, Millis(5000));
}

TEST(ProtectConfig, MistakesArePlacedAndExplained) {
  EXPECT_EQ(errors_of(with("    rate_limit: { rate: 5/x }\n")),
            Messages{"usher.yaml:3:25: rate '5/x' must be COUNT/s, COUNT/m or COUNT/h, from 1/h "
                     "to 1000000/s (like 5/s)"});
  EXPECT_EQ(errors_of(with("    rate_limit: { key: ip, rate: 5/s }\n")),
            Messages{"usher.yaml:3:24: unknown rate_limit key 'ip' (client-ip, uri, header:NAME, "
                     "cookie:NAME or query:NAME)"});
  EXPECT_EQ(errors_of(with("    rate_limit: { burst: 3 }\n")),
            Messages{"usher.yaml:3:17: rate_limit needs a 'rate' (like 5/s, 300/m or 1000/h)"});
  EXPECT_EQ(errors_of(with("    deny: [10.0.0.0/33]\n")),
            Messages{"usher.yaml:3:12: '10.0.0.0/33' has an invalid prefix length (0 to 32)"});
  EXPECT_EQ(errors_of(with("    allow: []\n")), Messages{"usher.yaml:3:12: allow is empty"});
  EXPECT_EQ(errors_of(with("", "    queue: { max: 5 }\n")),
            Messages{"usher.yaml:8:12: queue needs max_connections: requests wait only for a "
                     "full backend"});
  EXPECT_EQ(errors_of(with("", "    buffer_request: 32MiB\n")),
            Messages{"usher.yaml:8:21: buffer_request must be at most 16MiB"});
  EXPECT_EQ(errors_of(with("", "", "limits:\n  min_body_rate: { window: 5s }\n")),
            Messages{"usher.yaml:9:18: min_body_rate needs 'bytes_per_second' (like 1KiB)"});
}

TEST(ProtectConfig, IdempotentAppliesOnlyToPoolRoutes) {
  EXPECT_EQ(errors_of("listeners:\n  - listen: 127.0.0.1:8080\n    routes:\n"
                      "      - respond: { status: 200 }\n        idempotent: true\n"
                      "pools: []\n"),
            Messages{"usher.yaml:5:21: idempotent applies only to routes with a 'pool'"});
}

}  // namespace
}  // namespace usher::config
