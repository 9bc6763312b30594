#include <gtest/gtest.h>

#include <string>

#include "config/config.h"

namespace usher::config {
namespace {

std::string pool_with(const std::string& tls) {
  return "listeners:\n  - listen: 127.0.0.1:8080\n    pool: p\n"
         "pools:\n  - name: p\n    backends: [127.0.0.1:9001]\n    tls: " +
         tls + "\n";
}

TEST(PoolTls, AnEmptyBlockVerifiesWithTheSystemStore) {
  for (const char* tls : {"{}", ""}) {
    Errors errors;
    auto config = load_string(pool_with(tls), "conf/usher.yaml", errors);
    ASSERT_TRUE(config.ok()) << errors.messages.at(0);
    ASSERT_TRUE(config->pools[0].tls.has_value());
    EXPECT_TRUE(config->pools[0].tls->verify);
    EXPECT_EQ(config->pools[0].tls->ca, "");
    EXPECT_EQ(config->pools[0].tls->sni, "");
  }
  Errors errors;
  auto plain = load_string(pool_with("{}").substr(0, pool_with("{}").find("    tls")),
                           "conf/usher.yaml", errors);
  ASSERT_TRUE(plain.ok());
  EXPECT_FALSE(plain->pools[0].tls.has_value());
}

TEST(PoolTls, FilesAreRelativeToTheConfigurationFolder) {
  Errors errors;
  auto config = load_string(
      pool_with("{ verify: false, ca: ca.pem, sni: app.internal, cert: c.pem, key: /k.pem }"),
      "conf/usher.yaml", errors);
  ASSERT_TRUE(config.ok()) << errors.messages.at(0);
  const PoolTls& tls = *config->pools[0].tls;
  EXPECT_FALSE(tls.verify);
  EXPECT_EQ(tls.ca, "conf/ca.pem");
  EXPECT_EQ(tls.sni, "app.internal");
  EXPECT_EQ(tls.cert, "conf/c.pem");
  EXPECT_EQ(tls.key, "/k.pem");
}

TEST(PoolTls, ProblemsHaveTheirPositions) {
  const std::pair<const char*, const char*> cases[] = {
      {"{ verify: maybe }", "usher.yaml:7:20: verify must be true or false"},
      {"{ cafile: x.pem }", "usher.yaml:7:12: unknown key 'cafile'"},
      {"{ cert: c.pem }", "usher.yaml:7:10: tls: a client certificate needs both 'cert' and 'key'"},
      {"[ca.pem]", "usher.yaml:7:10: tls must be a map"},
  };
  for (const auto& [tls, expected] : cases) {
    Errors errors;
    EXPECT_FALSE(load_string(pool_with(tls), "usher.yaml", errors).ok()) << tls;
    ASSERT_FALSE(errors.messages.empty()) << tls;
    EXPECT_EQ(errors.messages[0].substr(0, std::string(expected).size()), expected) << tls;
  }
}

}  // namespace
}  // namespace usher::config
