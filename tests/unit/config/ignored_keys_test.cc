// Keys that would have no effect where they are written are errors, each at FILE:LINE:COL: a
// user who sets them expects them to work.
#include <gtest/gtest.h>

#include <string>

#include "config/config.h"

namespace usher::config {
namespace {

std::vector<std::string> errors_of(const std::string& yaml) {
  Errors errors;
  load_string(yaml, "usher.yaml", errors);
  return errors.messages;
}

std::string pool_with(const std::string& keys) {
  return "listeners: []\npools:\n  - name: p\n" + keys + "    backends: [127.0.0.1:1]\n";
}

using Messages = std::vector<std::string>;

// A udp listener reads its session keys; its pool may send PROXY protocol v2 but not v1, whose
// header cannot say UDP.
TEST(IgnoredKeys, UdpListenerSessionsAndProxyProtocol) {
  const std::string listener =
      "listeners:\n  - listen: 127.0.0.1:53\n    protocol: udp\n    pool: p\n"
      "    session_idle: 5s\n    max_sessions: 7\n";
  Errors errors;
  auto config = load_string(listener +
                                "pools:\n  - name: p\n    proxy_protocol: v2\n"
                                "    backends: [127.0.0.1:1]\n",
                            "usher.yaml", errors);
  ASSERT_TRUE(config.ok()) << errors.messages[0];
  EXPECT_EQ(config->listeners[0].session_idle, std::chrono::seconds(5));
  EXPECT_EQ(config->listeners[0].max_sessions, 7u);
  EXPECT_EQ(config->pools[0].proxy_protocol, ProxyProtocolVersion::kV2);
  EXPECT_EQ(errors_of(listener + "pools:\n  - name: p\n    proxy_protocol: v1\n"
                                 "    backends: [127.0.0.1:1]\n"),
            Messages{"usher.yaml:9:21: proxy_protocol v1 is for tcp (its header cannot say UDP); a "
                     "udp listener's pool takes v2; pool 'p' serves udp listener '127.0.0.1:53'"});
}

TEST(IgnoredKeys, HashKeyWithAnAlgorithmThatDoesNotHash) {
  EXPECT_EQ(errors_of(pool_with("    balance: least-connections\n    hash_key: header:X-User\n")),
            Messages{"usher.yaml:5:15: hash_key has no effect with balance 'least-connections' "
                     "(hash_key applies to ip-hash, hash and hash-bounded)"});
  // round-robin, the default
  EXPECT_EQ(errors_of(pool_with("    hash_key: client-ip\n")),
            Messages{"usher.yaml:4:15: hash_key has no effect with balance 'round-robin' "
                     "(hash_key applies to ip-hash, hash and hash-bounded)"});
}

TEST(IgnoredKeys, IpHashAlwaysHashesTheClientAddress) {
  EXPECT_EQ(errors_of(pool_with("    balance: ip-hash\n    hash_key: cookie:sid\n")),
            Messages{"usher.yaml:5:15: ip-hash always hashes the client address; to hash "
                     "'cookie:sid' use balance: hash (or hash-bounded)"});
  EXPECT_EQ(errors_of(pool_with("    balance: ip-hash\n    hash_key: client-ip\n")), Messages{});
}

TEST(IgnoredKeys, BalanceFactorOnlyWithBoundedLoads) {
  EXPECT_EQ(errors_of(pool_with("    balance: hash\n    hash_balance_factor: 1.5\n")),
            Messages{"usher.yaml:5:26: hash_balance_factor has no effect with balance 'hash' (it "
                     "applies to hash-bounded only)"});
  Errors errors;
  auto config = load_string(
      pool_with(
          "    balance: hash-bounded\n    hash_key: query:user\n    hash_balance_factor: 1.5\n"),
      "usher.yaml", errors);
  ASSERT_TRUE(config.ok()) << errors.messages[0];
  EXPECT_EQ(config->pools[0].hash_balance_factor, 1.5);
  EXPECT_EQ(config->pools[0].hash_key.kind, HashKey::Kind::kQuery);
  EXPECT_EQ(config->pools[0].hash_key.name, "user");
}

TEST(IgnoredKeys, RetryBudgetIsThePoolsNotARoutes) {
  const std::string yaml = R"(listeners:
  - listen: 127.0.0.1:80
    routes:
      - pool: p
        retries: { attempts: 2, budget: 5, budget_floor: 1 }
pools:
  - name: p
    retries: { budget: 5, budget_floor: 1 }
    backends: [127.0.0.1:1]
)";
  EXPECT_EQ(errors_of(yaml),
            (Messages{"usher.yaml:5:41: retries.budget is the pool's, shared by all its routes: "
                      "set it in pool 'p'",
                      "usher.yaml:5:58: retries.budget_floor is the pool's, shared by all its "
                      "routes: set it in pool 'p'"}));
}

}  // namespace
}  // namespace usher::config
