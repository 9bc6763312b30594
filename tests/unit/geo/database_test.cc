#include "geo/database.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace usher::geo {
namespace {

// Country databases made by tests/helpers/make_mmdb.pl (libmaxmind-db-writer-perl), in a
// folder of their own per test.
class GeoDatabase : public testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/usher-geo-XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // Writes `name` (renamed into place) with CIDR=COUNTRY:CONTINENT entries; its path.
  std::string make(const std::string& name, const std::vector<std::string>& entries) {
    const std::string path = dir_ + "/" + name;
    std::string command = "/usr/bin/perl " USHER_SOURCE_DIR "/tests/helpers/make_mmdb.pl " + path;
    for (const std::string& entry : entries) command += " " + entry;
    EXPECT_EQ(std::system(command.c_str()), 0) << command;
    return path;
  }

  std::shared_ptr<const Database> open(const std::string& path) {
    auto database = Database::open(path);
    EXPECT_TRUE(database.ok()) << database.error().message;
    return database.ok() ? *database : nullptr;
  }

  std::string dir_;
};

std::string country(const Database& database, std::string_view address) {
  return std::string(database.lookup(IpBytes::from_text(address)).country_code());
}

TEST_F(GeoDatabase, LooksUpCountryAndContinentOfIpv4AndIpv6Clients) {
  auto database = open(make("country.mmdb", {"192.0.2.0/24=DE:EU", "198.51.100.0/25=US:NA",
                                             "2001:db8::/32=FR:EU", "203.0.113.0/24=:OC"}));
  ASSERT_TRUE(database);
  EXPECT_EQ(database->type(), "GeoLite2-Country");
  const Place de = database->lookup(IpBytes::from_text("192.0.2.200"));
  EXPECT_EQ(de.country_code(), "DE");
  EXPECT_EQ(de.continent_code(), "EU");
  EXPECT_EQ(country(*database, "198.51.100.1"), "US");
  EXPECT_EQ(country(*database, "198.51.100.128"), "");  // past the /25
  EXPECT_EQ(country(*database, "2001:db8:1::5"), "FR");
  EXPECT_EQ(country(*database, "2001:db9::1"), "");
  // A record with a continent and no country.
  const Place oceania = database->lookup(IpBytes::from_text("203.0.113.9"));
  EXPECT_EQ(oceania.country_code(), "");
  EXPECT_EQ(oceania.continent_code(), "OC");
  // An IPv4-mapped IPv6 address handed in as IPv6 finds the IPv4 record (::ffff:0:0/96 is
  // aliased to the IPv4 part of the tree).
  IpBytes mapped;
  mapped.family = AF_INET6;
  mapped.bytes = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 1};
  EXPECT_EQ(database->lookup(mapped).country_code(), "DE");
  EXPECT_EQ(database->lookup(IpBytes{}).country_code(), "");  // not IP
}

TEST_F(GeoDatabase, AMissingOrCorruptFileIsAnErrorInLibmaxminddbsWords) {
  auto missing = Database::open(dir_ + "/missing.mmdb");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().message, "geoip database '" + dir_ +
                                         "/missing.mmdb': Error opening the specified MaxMind DB "
                                         "file (No such file or directory)");
  const std::string corrupt = dir_ + "/corrupt.mmdb";
  std::ofstream(corrupt) << std::string(4096, 'x');
  auto bad = Database::open(corrupt);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().message,
            "geoip database '" + corrupt + "': The MaxMind DB file contains invalid metadata");
  // Cut short: the metadata at the end is gone.
  const std::string good = make("good.mmdb", {"192.0.2.0/24=DE:EU"});
  std::filesystem::resize_file(good, std::filesystem::file_size(good) / 2);
  EXPECT_FALSE(Database::open(good).ok());
  auto directory = Database::open(dir_);
  ASSERT_FALSE(directory.ok());
  EXPECT_EQ(directory.error().message, "geoip database '" + dir_ + "': not a regular file");
}

// The open database reads its own copy: a file written over in place (cp truncates it first)
// changes nothing under it, and cannot make a lookup read past the end of a shrunken mapping.
TEST_F(GeoDatabase, AFileWrittenOverInPlaceLeavesTheOpenDatabaseAlone) {
  const std::string path = make("country.mmdb", {"192.0.2.0/24=DE:EU", "198.51.100.0/24=US:NA"});
  auto database = open(path);
  ASSERT_TRUE(database);
  const FileStamp before = database->stamp();
  EXPECT_EQ(stamp_of(path), before);
  std::ofstream(path, std::ios::trunc) << "x";  // the same inode, one byte long
  EXPECT_EQ(country(*database, "192.0.2.1"), "DE");
  EXPECT_EQ(country(*database, "198.51.100.1"), "US");
  EXPECT_FALSE(stamp_of(path) == before);
  // A new file renamed into place: the stamp tells it apart, the old database still answers.
  make("country.mmdb", {"192.0.2.0/24=US:NA"});
  auto next = open(path);
  ASSERT_TRUE(next);
  EXPECT_EQ(country(*next, "192.0.2.1"), "US");
  EXPECT_EQ(country(*database, "192.0.2.1"), "DE");
  EXPECT_EQ(stamp_of(path), next->stamp());
  EXPECT_EQ(stamp_of(dir_ + "/missing"), FileStamp{});
}

TEST_F(GeoDatabase, ALocatorLooksUpOnceAndOnlyWhenAsked) {
  auto database = open(make("country.mmdb", {"192.0.2.0/24=DE:EU"}));
  ASSERT_TRUE(database);
  const Locator locator(database.get(), IpBytes::from_text("192.0.2.5"));
  EXPECT_FALSE(locator.looked_up());
  EXPECT_EQ(locator.client().family, AF_INET);
  EXPECT_EQ(locator.place().country_code(), "DE");
  EXPECT_TRUE(locator.looked_up());
  EXPECT_EQ(&locator.place(), &locator.place());
  // Without a database every client is nowhere.
  const Locator nowhere(nullptr, IpBytes::from_text("192.0.2.5"));
  EXPECT_EQ(nowhere.place().country_code(), "");
  EXPECT_EQ(nowhere.place().continent_code(), "");
}

}  // namespace
}  // namespace usher::geo
