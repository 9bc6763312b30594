#include <gtest/gtest.h>

#include <string>

#include "config/config.h"

namespace usher::config {
namespace {

struct Loaded {
  bool ok;
  Config config;
  std::vector<std::string> errors;
};

Loaded load(const std::string& top, const std::string& pool_keys, const std::string& backends) {
  const std::string yaml = top +
                           "listeners:\n"
                           "  - { name: web, listen: 127.0.0.1:8080, pool: web }\n"
                           "pools:\n"
                           "  - name: web\n" +
                           pool_keys + "    backends:\n" + backends;
  Errors errors;
  auto config = load_string(yaml, "usher.yaml", errors);
  return {config.ok(), config.ok() ? *config : Config{}, errors.messages};
}

const std::string kHere = "locality: { zone: eu-west-1a, region: eu-west }\n";
const std::string kZoned =
    "      - { address: 127.0.0.1:9001, zone: eu-west-1a }\n"
    "      - { address: 127.0.0.1:9002, zone: eu-west-1b, region: eu-west }\n"
    "      - 127.0.0.1:9003\n";

TEST(LocalityConfig, ReadsWhereUsherAndItsBackendsRun) {
  Loaded l = load(kHere, "    locality_aware: true\n", kZoned);
  ASSERT_TRUE(l.ok) << l.errors.front();
  ASSERT_TRUE(l.config.locality.has_value());
  EXPECT_EQ(l.config.locality->zone, "eu-west-1a");
  EXPECT_EQ(l.config.locality->region, "eu-west");
  const Pool& pool = l.config.pools[0];
  EXPECT_TRUE(pool.locality_aware);
  ASSERT_TRUE(pool.locality.has_value());
  EXPECT_EQ(pool.locality->zone, "eu-west-1a");
  EXPECT_EQ(pool.backends[0].zone, "eu-west-1a");
  EXPECT_EQ(pool.backends[0].region, "");
  EXPECT_EQ(pool.backends[1].region, "eu-west");
  EXPECT_EQ(pool.backends[2].zone, "");
}

TEST(LocalityConfig, ZonesWithoutLocalityAwareAreKeptForMetrics) {
  Loaded l = load("", "", kZoned);
  ASSERT_TRUE(l.ok) << l.errors.front();
  EXPECT_FALSE(l.config.pools[0].locality_aware);
  EXPECT_FALSE(l.config.pools[0].locality.has_value());
  EXPECT_EQ(l.config.pools[0].backends[1].zone, "eu-west-1b");
}

TEST(LocalityConfig, LocalityAwareNeedsTheTopLevelLocality) {
  Loaded l = load("", "    locality_aware: true\n", kZoned);
  ASSERT_FALSE(l.ok);
  EXPECT_EQ(l.errors.front(),
            "usher.yaml:5:21: locality_aware needs the top-level 'locality: { zone, region }' that "
            "says where this usher runs");
}

TEST(LocalityConfig, LocalityAwareNeedsBackendsThatSayWhereTheyRun) {
  Loaded l = load(kHere, "    locality_aware: true\n", "      - 127.0.0.1:9001\n");
  ASSERT_FALSE(l.ok);
  EXPECT_EQ(l.errors.front(),
            "usher.yaml:6:21: locality_aware: no backend of pool 'web' names a zone or region, so "
            "there is nothing to prefer");
}

TEST(LocalityConfig, BadValuesAreErrorsAtTheirPlace) {
  Loaded flag = load(kHere, "    locality_aware: yes please\n", kZoned);
  ASSERT_FALSE(flag.ok);
  EXPECT_EQ(flag.errors.front(),
            "usher.yaml:6:21: locality_aware must be true or false, not 'yes please'");

  Loaded name = load("", "", "      - { address: 127.0.0.1:9001, zone: \"eu west\" }\n");
  ASSERT_FALSE(name.ok);
  EXPECT_EQ(name.errors.front(),
            "usher.yaml:6:42: zone must be 1 to 64 letters, digits, '.', '_' or '-', not 'eu "
            "west'");

  Loaded list = load("", "", "      - { address: 127.0.0.1:9001, region: [a, b] }\n");
  ASSERT_FALSE(list.ok);
  EXPECT_EQ(list.errors.front(), "usher.yaml:6:44: region must be a single value");

  Loaded half = load("locality: { zone: a }\n", "", kZoned);
  ASSERT_FALSE(half.ok);
  EXPECT_EQ(half.errors.front(), "usher.yaml:1:11: locality needs a 'region'");

  Loaded unknown = load("locality: { zone: a, region: r, city: x }\n", "", kZoned);
  ASSERT_FALSE(unknown.ok);
  EXPECT_EQ(unknown.errors.front(),
            "usher.yaml:1:33: unknown key 'city' in locality (known: zone, region)");

  Loaded scalar = load("locality: eu-west-1a\n", "", kZoned);
  ASSERT_FALSE(scalar.ok);
  EXPECT_EQ(scalar.errors.front(), "usher.yaml:1:11: locality must be a mapping");
}

TEST(LocalityConfig, DnsDiscoveryCannotBeLocalityAware) {
  Errors errors;
  auto config = load_string(kHere +
                                "listeners:\n"
                                "  - { name: web, listen: 127.0.0.1:8080, pool: web }\n"
                                "pools:\n"
                                "  - name: web\n"
                                "    locality_aware: true\n"
                                "    discovery: { dns: app.internal, port: 80 }\n",
                            "usher.yaml", errors);
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(errors.messages.front(),
            "usher.yaml:6:21: locality_aware needs backends with a zone or region; DNS discovery "
            "gives addresses only (use a discovery file, whose backends may name them)");
}

}  // namespace
}  // namespace usher::config
