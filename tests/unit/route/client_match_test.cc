// Route conditions on the client: `geo` (its place by the geoip database) and
// `client_cidr_file` (its address in a prefix list).
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "route/fields.h"
#include "route/table.h"

namespace usher::route {
namespace {

using config::Route;

Route in_places(std::vector<std::string> countries, std::vector<std::string> continents) {
  Route r;
  r.match.geo = config::GeoMatch{std::move(countries), std::move(continents), {}};
  return r;
}

Route in_prefixes(const std::vector<std::string>& prefixes) {
  std::vector<IpRange> ranges;
  for (const std::string& p : prefixes) ranges.push_back(*IpRange::parse(p));
  Route r;
  r.match.client_cidr_file = "clients.txt";
  r.match.client_cidrs =
      std::make_shared<const protect::PrefixSet>(protect::PrefixSet::build(ranges));
  return r;
}

geo::Place place(const char* country, const char* continent) {
  geo::Place p;
  if (*country) p.country = {country[0], country[1]};
  if (*continent) p.continent = {continent[0], continent[1]};
  return p;
}

uint32_t route_of(const Table& table, geo::Locator* client, std::string target = "/") {
  RequestView view{"GET", "example.com", {}, {}, {}, client};
  split_target(target, view.path, view.query);
  return table.match(view);
}

TEST(ClientMatch, AGeoConditionHoldsForAnyListedCountryOrContinent) {
  const std::vector<Route> routes = {in_places({"DE", "FR"}, {}), in_places({}, {"NA"}),
                                     in_places({"JP"}, {"EU"}), Route{}};
  const Table table(routes);
  const IpBytes ip = IpBytes::from_text("192.0.2.1");
  auto at = [&](const char* country, const char* continent) {
    geo::Locator client = geo::Locator::known(ip, place(country, continent));
    return route_of(table, &client);
  };
  EXPECT_EQ(at("DE", "EU"), 0u);
  EXPECT_EQ(at("FR", "EU"), 0u);
  EXPECT_EQ(at("US", "NA"), 1u);
  EXPECT_EQ(at("JP", "AS"), 2u);
  EXPECT_EQ(at("NL", "EU"), 2u);  // by its continent
  EXPECT_EQ(at("BR", "SA"), 3u);
  EXPECT_EQ(at("", ""), 3u);                // not in the database
  EXPECT_EQ(route_of(table, nullptr), 3u);  // no client to place
}

// The place is looked up only when a geo condition is reached: a request the routes before it
// decide, or whose other conditions fail first, costs no lookup.
TEST(ClientMatch, ThePlaceIsLookedUpOnlyWhenAGeoConditionIsReached) {
  Route api_in_de = in_places({"DE"}, {});
  api_in_de.match.path = config::StringMatch{config::StringMatch::Kind::kPrefix, "/api/"};
  Route health;
  health.match.path = config::StringMatch{config::StringMatch::Kind::kExact, "/health"};
  const std::vector<Route> routes = {health, api_in_de, Route{}};
  const Table table(routes);
  // No database: a lookup would leave the place empty, and looked_up() says whether one ran.
  geo::Locator client(nullptr, IpBytes::from_text("192.0.2.1"));
  EXPECT_EQ(route_of(table, &client, "/health"), 0u);
  EXPECT_FALSE(client.looked_up());
  EXPECT_EQ(route_of(table, &client, "/other"), 2u);
  EXPECT_FALSE(client.looked_up());
  EXPECT_EQ(route_of(table, &client, "/api/x"), 2u);
  EXPECT_TRUE(client.looked_up());
}

TEST(ClientMatch, AClientCidrConditionHoldsForAddressesInTheList) {
  const std::vector<Route> routes = {in_prefixes({"10.0.0.0/8", "2001:db8::/32", "192.0.2.7"}),
                                     Route{}};
  const Table table(routes);
  auto at = [&](const char* address) {
    geo::Locator client(nullptr, IpBytes::from_text(address));
    return route_of(table, &client);
  };
  EXPECT_EQ(at("10.1.2.3"), 0u);
  EXPECT_EQ(at("::ffff:10.1.2.3"), 0u);  // IPv4-mapped counts as IPv4
  EXPECT_EQ(at("2001:db8:5::1"), 0u);
  EXPECT_EQ(at("192.0.2.7"), 0u);
  EXPECT_EQ(at("192.0.2.8"), 1u);
  EXPECT_EQ(at("11.0.0.1"), 1u);
  EXPECT_EQ(at("2001:db9::1"), 1u);
  EXPECT_EQ(route_of(table, nullptr), 1u);
}

}  // namespace
}  // namespace usher::route
