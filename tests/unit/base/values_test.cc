#include <gtest/gtest.h>

#include "base/address.h"
#include "base/duration.h"

namespace usher {
namespace {

TEST(Address, ParsesIpv4Ipv6AndLocalhost) {
  EXPECT_EQ(Address::parse("127.0.0.1:80")->to_string(), "127.0.0.1:80");
  EXPECT_EQ(Address::parse("[::1]:8080")->to_string(), "[::1]:8080");
  EXPECT_EQ(Address::parse("localhost:1")->to_string(), "127.0.0.1:1");
  EXPECT_EQ(Address::parse(":8080")->to_string(), "0.0.0.0:8080");
}

TEST(Address, RejectsMalformed) {
  for (const char* text : {"127.0.0.1", "127.0.0.1:", "127.0.0.1:65536", "::1:80", "[::1]80",
                           "example.com:80", "1.2.3.4:-1", "1.2.3.4:8o"}) {
    EXPECT_FALSE(Address::parse(text).ok()) << text;
  }
}

TEST(Duration, Units) {
  EXPECT_EQ(*parse_duration("500ms"), Millis(500));
  EXPECT_EQ(*parse_duration("10s"), Millis(10'000));
  EXPECT_EQ(*parse_duration("2m"), Millis(120'000));
  EXPECT_EQ(*parse_duration("1h"), Millis(3'600'000));
  for (const char* text : {"10", "s", "1.5s", "-1s", "10 s", "3d"}) {
    EXPECT_FALSE(parse_duration(text).ok()) << text;
  }
}

TEST(Size, Units) {
  EXPECT_EQ(*parse_size("512"), 512u);
  EXPECT_EQ(*parse_size("8KiB"), 8192u);
  EXPECT_EQ(*parse_size("1MiB"), 1u << 20);
  EXPECT_FALSE(parse_size("1GB").ok());
}

}  // namespace
}  // namespace usher
