// The keys about where clients are: `geoip`, a route's `geo` and `client_cidr_file` conditions,
// and ${geo_country}.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "config/config.h"

namespace usher::config {
namespace {

using Messages = std::vector<std::string>;

class GeoConfig : public testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/usher-geo-config-XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  void write(const std::string& name, const std::string& text) {
    std::ofstream(dir_ + "/" + name) << text;
  }

  // A configuration in dir_ whose first route has `match` (and `extra` keys) before a default.
  Expected<Config> load(const std::string& top, const std::string& match,
                        const std::string& extra = "") {
    errors_ = {};
    const std::string yaml = top +
                             "listeners:\n"
                             "  - listen: 127.0.0.1:8080\n"
                             "    routes:\n"
                             "      - match: " +
                             match + "\n        pool: web\n" + extra +
                             "      - pool: web\n"
                             "pools:\n"
                             "  - { name: web, backends: [127.0.0.1:9001] }\n";
    return load_string(yaml, dir_ + "/usher.yaml", errors_);
  }

  std::string dir_;
  Errors errors_;
};

const std::string kGeoip = "geoip: { database: country.mmdb }\n";

TEST_F(GeoConfig, GeoipDatabaseIsFoundBesideTheConfigurationFile) {
  auto config = load(kGeoip, "{ geo: { country: [de, FR], continent: EU } }");
  ASSERT_TRUE(config.ok()) << errors_.messages.front();
  ASSERT_TRUE(config->geoip);
  EXPECT_EQ(config->geoip->database, dir_ + "/country.mmdb");
  EXPECT_EQ(config->geoip->marks.where(config->source, "database"), dir_ + "/usher.yaml:1:20: ");
  const RouteMatch& match = config->listeners[0].routes[0].match;
  ASSERT_TRUE(match.geo);
  EXPECT_EQ(match.geo->countries, (std::vector<std::string>{"DE", "FR"}));
  EXPECT_EQ(match.geo->continents, (std::vector<std::string>{"EU"}));
  // A route with only a geo condition does not match every request: the default after it is
  // used.
  EXPECT_EQ(config->listeners[0].routes.size(), 2u);
}

TEST_F(GeoConfig, BadCodesAndKeysAreRefusedWhereWritten) {
  EXPECT_FALSE(load(kGeoip, "{ geo: { country: [DEU, D1], continent: [Europe], city: x } }").ok());
  const std::string file = dir_ + "/usher.yaml";
  EXPECT_EQ(errors_.messages,
            (Messages{file + ":5:66: unknown key 'city' in geo (known: country, continent)",
                      file + ":5:35: 'DEU' is not a two-letter country code (ISO 3166-1: DE, FR, "
                             "US)",
                      file + ":5:40: 'D1' is not a two-letter country code (ISO 3166-1: DE, FR, "
                             "US)",
                      file + ":5:57: 'Europe' is not a continent code (AF, AN, AS, EU, NA, OC, "
                             "SA)"}));
  EXPECT_FALSE(load(kGeoip, "{ geo: {} }").ok());
  EXPECT_EQ(errors_.messages, Messages{file + ":5:23: geo needs 'country' or 'continent'"});
  EXPECT_FALSE(load("geoip: { file: x }\n", "{ path: / }").ok());
  EXPECT_EQ(errors_.messages,
            (Messages{dir_ + "/usher.yaml:1:10: unknown key 'file' in geoip (known: database)",
                      dir_ + "/usher.yaml:1:8: geoip needs 'database' (a .mmdb file)"}));
}

TEST_F(GeoConfig, GeoConditionsAndGeoCountryNeedADatabase) {
  EXPECT_FALSE(load("", "{ geo: { country: [DE] } }",
                    "        request_headers: { set: { X-Country: \"${geo_country}\" } }\n")
                   .ok());
  const std::string file = dir_ + "/usher.yaml";
  EXPECT_EQ(errors_.messages,
            (Messages{file + ":4:23: the route's geo condition needs a geoip database (top "
                             "level: geoip: { database: FILE })",
                      file + ":6:46: ${geo_country} needs a geoip database (top level: geoip: { "
                             "database: FILE })"}));
  auto config = load(kGeoip, "{ path: / }",
                     "        response_headers: { add: { X-Country: \"c=${geo_country}\" } }\n");
  ASSERT_TRUE(config.ok()) << errors_.messages.front();
  const HeaderPolicy& policy = config->listeners[0].routes[0].response_headers;
  EXPECT_TRUE(policy.uses_geo_country());
  EXPECT_EQ(policy.add[0].value.parts.size(), 2u);
  EXPECT_EQ(policy.add[0].value.parts[1].variable, HeaderTemplate::Variable::kGeoCountry);
  EXPECT_FALSE(config->listeners[0].routes[0].request_headers.uses_geo_country());
}

TEST_F(GeoConfig, AClientCidrFileIsReadWithTheConfiguration) {
  write("clients.txt", "# offices\n10.0.0.0/8\n\n  192.0.2.7   # one host\n2001:db8::/32\r\n");
  auto config = load("", "{ client_cidr_file: clients.txt }");
  ASSERT_TRUE(config.ok()) << errors_.messages.front();
  const RouteMatch& match = config->listeners[0].routes[0].match;
  EXPECT_EQ(match.client_cidr_file, dir_ + "/clients.txt");
  ASSERT_TRUE(match.client_cidrs);
  EXPECT_EQ(match.client_cidrs->intervals(), 3u);
  EXPECT_TRUE(match.client_cidrs->contains(IpBytes::from_text("10.9.9.9")));
  EXPECT_TRUE(match.client_cidrs->contains(IpBytes::from_text("192.0.2.7")));
  EXPECT_FALSE(match.client_cidrs->contains(IpBytes::from_text("192.0.2.8")));
  EXPECT_TRUE(match.client_cidrs->contains(IpBytes::from_text("2001:db8::1")));
  EXPECT_EQ(config->listeners[0].routes.size(), 2u);  // not a catch-all
}

TEST_F(GeoConfig, AClientCidrFilesProblemsAreAtItsLines) {
  write("clients.txt", "10.0.0.0/8\n  10.0.0.0/33 # too long\nexample.com\n");
  EXPECT_FALSE(load("", "{ client_cidr_file: clients.txt }").ok());
  const std::string list = dir_ + "/clients.txt";
  EXPECT_EQ(errors_.messages,
            (Messages{list + ":2:3: '10.0.0.0/33' has an invalid prefix length (0 to 32)",
                      list + ":3:1: 'example.com' is not an IP address or CIDR range (like "
                             "10.0.0.0/8 or ::1/128)"}));
  EXPECT_FALSE(load("", "{ client_cidr_file: missing.txt }").ok());
  EXPECT_EQ(errors_.messages, Messages{dir_ + "/usher.yaml:4:36: client_cidr_file: " + dir_ +
                                       "/missing.txt:1:1: cannot open file: No such file or "
                                       "directory"});
  write("empty.txt", "# nothing yet\n\n");
  EXPECT_FALSE(load("", "{ client_cidr_file: empty.txt }").ok());
  EXPECT_EQ(errors_.messages,
            Messages{dir_ + "/usher.yaml:4:36: client_cidr_file " + dir_ +
                     "/empty.txt lists no prefix: the route would match no client"});
}

}  // namespace
}  // namespace usher::config
