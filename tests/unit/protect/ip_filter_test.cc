#include "protect/ip_filter.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <algorithm>
#include <initializer_list>
#include <random>
#include <string>
#include <utility>
#include <vector>

namespace usher::protect {
namespace {

std::vector<IpRange> ranges(std::initializer_list<const char*> texts) {
  std::vector<IpRange> out;
  for (const char* text : texts) {
    auto range = IpRange::parse(text);
    EXPECT_TRUE(range.ok()) << text;
    if (range.ok()) out.push_back(*range);
  }
  return out;
}

PrefixSet set_of(std::initializer_list<const char*> texts) {
  return PrefixSet::build(ranges(texts));
}

IpBytes ip(const char* text) {
  IpBytes bytes = IpBytes::from_text(text);
  EXPECT_NE(bytes.family, 0) << text;
  return bytes;
}

TEST(PrefixSet, EmptyContainsNothing) {
  const PrefixSet set;
  EXPECT_TRUE(set.empty());
  EXPECT_EQ(set.intervals(), 0u);
  EXPECT_FALSE(set.contains(ip("0.0.0.0")));
  EXPECT_FALSE(set.contains(ip("::")));
  EXPECT_TRUE(PrefixSet::build({}).empty());
}

TEST(PrefixSet, ExactHosts) {
  const PrefixSet set = set_of({"192.0.2.7", "10.1.2.3/32", "2001:db8::1", "::1/128"});
  EXPECT_EQ(set.intervals(), 4u);
  for (const char* in : {"192.0.2.7", "10.1.2.3", "2001:db8::1", "::1"}) {
    EXPECT_TRUE(set.contains(ip(in))) << in;
  }
  for (const char* out : {"192.0.2.6", "192.0.2.8", "10.1.2.2", "10.1.2.4",
                          "2001:db8::", "2001:db8::2", "::", "::2"}) {
    EXPECT_FALSE(set.contains(ip(out))) << out;
  }
}

TEST(PrefixSet, WholeSpaces) {
  const PrefixSet v4 = set_of({"0.0.0.0/0"});
  EXPECT_TRUE(v4.contains(ip("0.0.0.0")));
  EXPECT_TRUE(v4.contains(ip("255.255.255.255")));
  EXPECT_FALSE(v4.contains(ip("::")));
  EXPECT_FALSE(v4.contains(ip("2001:db8::1")));

  const PrefixSet v6 = set_of({"::/0"});
  EXPECT_TRUE(v6.contains(ip("::")));
  EXPECT_TRUE(v6.contains(ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")));
  EXPECT_FALSE(v6.contains(ip("0.0.0.0")));
  EXPECT_FALSE(v6.contains(ip("::ffff:10.0.0.1")));  // an IPv4 address, whatever its spelling
}

TEST(PrefixSet, Boundaries) {
  const PrefixSet set = set_of({"10.0.0.0/8", "192.168.4.0/22", "2001:db8:1::/48", "fe80::/10"});
  for (const char* in : {"10.0.0.0", "10.255.255.255", "192.168.4.0", "192.168.7.255",
                         "2001:db8:1::", "2001:db8:1:ffff:ffff:ffff:ffff:ffff",
                         "fe80::", "febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff"}) {
    EXPECT_TRUE(set.contains(ip(in))) << in;
  }
  for (const char* out :
       {"9.255.255.255", "11.0.0.0", "192.168.3.255", "192.168.8.0",
        "2001:db8:0:ffff:ffff:ffff:ffff:ffff", "2001:db8:2::", "fe7f:ffff::", "fec0::"}) {
    EXPECT_FALSE(set.contains(ip(out))) << out;
  }
}

TEST(PrefixSet, EdgesOfTheAddressSpace) {
  const PrefixSet set = set_of({"0.0.0.0/32", "255.255.255.255/32", "::/128",
                                "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128"});
  EXPECT_TRUE(set.contains(ip("0.0.0.0")));
  EXPECT_TRUE(set.contains(ip("255.255.255.255")));
  EXPECT_FALSE(set.contains(ip("0.0.0.1")));
  EXPECT_FALSE(set.contains(ip("255.255.255.254")));
  EXPECT_TRUE(set.contains(ip("::")));
  EXPECT_TRUE(set.contains(ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")));
  EXPECT_FALSE(set.contains(ip("::2")));
  EXPECT_FALSE(set.contains(ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe")));
}

TEST(PrefixSet, HostBitsPastThePrefixAreIgnored) {
  const PrefixSet set = set_of({"10.1.2.3/8", "2001:db8::ffff/32"});
  EXPECT_TRUE(set.contains(ip("10.0.0.0")));
  EXPECT_TRUE(set.contains(ip("10.255.255.255")));
  EXPECT_TRUE(set.contains(ip("2001:db8::")));
  EXPECT_FALSE(set.contains(ip("2001:db9::")));
}

TEST(PrefixSet, MergesOverlappingNestedAndAdjacent) {
  // Nested: one interval.
  EXPECT_EQ(set_of({"10.0.0.0/8", "10.1.0.0/16", "10.1.2.3"}).intervals(), 1u);
  // Overlapping in either order, duplicates: one interval.
  EXPECT_EQ(set_of({"10.1.0.0/16", "10.0.0.0/8", "10.0.0.0/8"}).intervals(), 1u);
  // Adjacent siblings, and a run of adjacent hosts: one interval each.
  EXPECT_EQ(set_of({"10.0.0.0/9", "10.128.0.0/9"}).intervals(), 1u);
  EXPECT_EQ(set_of({"192.0.2.1", "192.0.2.2", "192.0.2.0", "192.0.2.3"}).intervals(), 1u);
  EXPECT_EQ(set_of({"2001:db8::/33", "2001:db8:8000::/33"}).intervals(), 1u);
  // Adjacent across a byte boundary.
  EXPECT_EQ(set_of({"10.0.0.255", "10.0.1.0/24"}).intervals(), 1u);
  // A gap of one address keeps two.
  const PrefixSet gap = set_of({"10.0.0.0/24", "10.0.1.1", "::/1"});
  EXPECT_EQ(gap.intervals(), 3u);
  EXPECT_FALSE(gap.contains(ip("10.0.1.0")));
  EXPECT_TRUE(gap.contains(ip("10.0.1.1")));
  // Up to the top of the space: no wrap-around.
  const PrefixSet top = set_of({"255.255.255.0/24", "255.255.255.255", "0.0.0.0"});
  EXPECT_EQ(top.intervals(), 2u);
  EXPECT_FALSE(top.contains(ip("0.0.0.1")));
}

TEST(PrefixSet, FamiliesNeverMix) {
  // ::a00:0/104 has the same low 32 bits as 10.0.0.0/8 but is an IPv6 network.
  const PrefixSet v6 = set_of({"::a00:0/104", "::/96"});
  EXPECT_TRUE(v6.contains(ip("::a00:1")));
  EXPECT_FALSE(v6.contains(ip("10.0.0.1")));
  const PrefixSet v4 = set_of({"10.0.0.0/8"});
  EXPECT_FALSE(v4.contains(ip("::a00:1")));
  EXPECT_EQ(set_of({"10.0.0.0/8", "::a00:0/104"}).intervals(), 2u);
}

TEST(PrefixSet, V4MappedLooksUpAsV4) {
  const PrefixSet set = set_of({"10.0.0.0/8", "::ffff:192.0.2.1"});
  EXPECT_TRUE(set.contains(ip("::ffff:10.1.2.3")));
  EXPECT_TRUE(set.contains(ip("192.0.2.1")));  // the range parsed as IPv4 too
  EXPECT_FALSE(set.contains(ip("::ffff:11.0.0.0")));
  // Filled in by hand with family AF_INET6, as from raw sockaddr bytes.
  IpBytes raw;
  raw.family = AF_INET6;
  ASSERT_EQ(::inet_pton(AF_INET6, "::ffff:10.9.8.7", raw.bytes.data()), 1);
  EXPECT_TRUE(set.contains(raw));
  raw.bytes[10] = 0;  // ::10.9.8.7 (deprecated IPv4-compatible): IPv6, not in the set
  EXPECT_FALSE(set.contains(raw));
}

TEST(PrefixSet, NotAnAddressIsInNothing) {
  EXPECT_FALSE(set_of({"0.0.0.0/0", "::/0"}).contains(IpBytes{}));
}

TEST(PrefixSet, LargeTableUsesItsIndex) {
  // Every other /24 of 10.0.0.0/8: 32768 intervals, enough for the first-level index.
  std::vector<IpRange> list;
  for (int i = 0; i < 65536; i += 2) {
    list.push_back(
        *IpRange::parse("10." + std::to_string(i >> 8) + "." + std::to_string(i & 255) + ".0/24"));
  }
  list.push_back(*IpRange::parse("0.0.0.0/6"));  // spans many index buckets
  const PrefixSet set = PrefixSet::build(list);
  EXPECT_EQ(set.intervals(), 32769u);
  EXPECT_TRUE(set.contains(ip("10.0.0.0")));
  EXPECT_TRUE(set.contains(ip("10.255.254.255")));
  EXPECT_FALSE(set.contains(ip("10.0.1.0")));
  EXPECT_FALSE(set.contains(ip("10.255.255.255")));
  EXPECT_TRUE(set.contains(ip("0.0.0.0")));
  EXPECT_TRUE(set.contains(ip("3.255.255.255")));
  EXPECT_FALSE(set.contains(ip("4.0.0.0")));
  EXPECT_GE(set.memory_bytes(), set.intervals() * 8);
}

TEST(PrefixSet, IndexedTableRunningToTheTop) {
  // The index spans 10.0.0.0 up; the last interval has no end bound, so the bounds are odd.
  std::vector<IpRange> list;
  for (int i = 0; i < 256; i += 2)
    list.push_back(*IpRange::parse("10.0." + std::to_string(i) + ".0/24"));
  list.push_back(*IpRange::parse("255.255.255.0/24"));
  list.push_back(*IpRange::parse("ffff::/16"));
  const PrefixSet set = PrefixSet::build(list);
  EXPECT_EQ(set.intervals(), 130u);
  EXPECT_FALSE(set.contains(ip("9.255.255.255")));
  EXPECT_FALSE(set.contains(ip("0.0.0.0")));
  EXPECT_TRUE(set.contains(ip("10.0.254.255")));
  EXPECT_FALSE(set.contains(ip("10.0.255.0")));
  EXPECT_FALSE(set.contains(ip("255.255.254.255")));
  EXPECT_TRUE(set.contains(ip("255.255.255.255")));
  EXPECT_TRUE(set.contains(ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")));
  EXPECT_FALSE(set.contains(ip("fffe:ffff:ffff:ffff:ffff:ffff:ffff:ffff")));
}

TEST(IpFilter, DefaultAdmitsEveryone) {
  const IpFilter filter;
  EXPECT_TRUE(filter.empty());
  EXPECT_TRUE(filter.admits(ip("10.0.0.1")));
  EXPECT_TRUE(filter.admits(ip("::1")));
  EXPECT_TRUE(filter.admits(IpBytes{}));
}

TEST(IpFilter, EmptyAllowAdmitsAllButDenied) {
  const auto deny = ranges({"10.0.0.0/8", "2001:db8::/32"});
  const IpFilter filter({}, deny);
  EXPECT_FALSE(filter.empty());
  EXPECT_FALSE(filter.admits(ip("10.1.1.1")));
  EXPECT_FALSE(filter.admits(ip("::ffff:10.1.1.1")));
  EXPECT_FALSE(filter.admits(ip("2001:db8::1")));
  EXPECT_TRUE(filter.admits(ip("11.0.0.0")));
  EXPECT_TRUE(filter.admits(ip("2001:db9::1")));
}

TEST(IpFilter, AllowListShutsOutTheRest) {
  const auto allow = ranges({"10.0.0.0/8", "::1"});
  const IpFilter filter(allow, {});
  EXPECT_FALSE(filter.empty());
  EXPECT_TRUE(filter.admits(ip("10.2.3.4")));
  EXPECT_TRUE(filter.admits(ip("::1")));
  EXPECT_FALSE(filter.admits(ip("192.0.2.1")));
  EXPECT_FALSE(filter.admits(ip("::2")));
  EXPECT_FALSE(filter.admits(IpBytes{}));
}

TEST(IpFilter, DenyWins) {
  const auto allow = ranges({"10.0.0.0/8", "2001:db8::/32"});
  const auto deny = ranges({"10.6.6.0/24", "2001:db8:bad::/48", "10.0.0.0/8"});
  const IpFilter filter(allow, deny);
  EXPECT_FALSE(filter.admits(ip("10.6.6.6")));
  EXPECT_FALSE(filter.admits(ip("10.1.1.1")));  // denied outright, though allowed
  EXPECT_FALSE(filter.admits(ip("2001:db8:bad::1")));
  EXPECT_TRUE(filter.admits(ip("2001:db8:600d::1")));
}

// Random prefixes in a few narrow windows (so they overlap, nest and touch) against the naive
// loop over IpRange::contains, at random addresses and at every kind of boundary.
class Randomized {
 public:
  struct Window {
    const char* base;
    unsigned bits;  // in the 16-byte space, like IpRange::prefix_bits
  };

  IpBytes random_in(const Window& w) {
    IpBytes out = IpBytes::from_text(w.base);
    for (unsigned bit = w.bits; bit < 128; ++bit) {
      const auto mask = static_cast<uint8_t>(0x80 >> (bit % 8));
      out.bytes[bit / 8] =
          (rng_() & 1) ? (out.bytes[bit / 8] | mask) : (out.bytes[bit / 8] & ~mask);
    }
    return out;
  }

  IpRange random_range(const Window& w) {
    const IpBytes net = random_in(w);
    const unsigned bits = std::min(128u, w.bits + 8 + static_cast<unsigned>(rng_() % 13));
    const unsigned shown = net.family == AF_INET ? bits - 96 : bits;
    return *IpRange::parse(text(net) + "/" + std::to_string(shown));
  }

  // The first or last address of a range, or one beyond either (which may leave the family's
  // space: then it is skipped).
  bool boundary(const IpRange& r, IpBytes& out) {
    out = r.network();
    const unsigned bits = r.prefix_bits();
    const bool high = rng_() & 1;
    for (unsigned bit = bits; bit < 128; ++bit) {
      const auto mask = static_cast<uint8_t>(0x80 >> (bit % 8));
      out.bytes[bit / 8] = high ? (out.bytes[bit / 8] | mask) : (out.bytes[bit / 8] & ~mask);
    }
    if (rng_() % 2 == 0) return true;
    const int step = high ? 1 : -1;
    for (int i = 15; i >= (out.family == AF_INET ? 12 : 0); --i) {
      const uint8_t before = out.bytes[i];
      out.bytes[i] = static_cast<uint8_t>(before + step);
      if ((high && before != 0xff) || (!high && before != 0)) return true;
    }
    return false;
  }

  static std::string text(const IpBytes& ip) {
    char buffer[INET6_ADDRSTRLEN];
    const void* raw = ip.family == AF_INET ? ip.bytes.data() + 12 : ip.bytes.data();
    return ::inet_ntop(ip.family, raw, buffer, sizeof buffer);
  }

  std::mt19937_64& rng() { return rng_; }

 private:
  std::mt19937_64 rng_{20240611};
};

// `count` random prefixes in each window (none: the window only supplies probe addresses).
void compare_with_naive(const std::vector<std::pair<Randomized::Window, int>>& windows) {
  Randomized gen;
  std::vector<IpRange> list;
  for (const auto& [window, count] : windows) {
    for (int i = 0; i < count; ++i) list.push_back(gen.random_range(window));
  }
  const PrefixSet set = PrefixSet::build(list);
  EXPECT_LT(set.intervals(), list.size());  // some did merge

  size_t hits = 0;
  size_t checked = 0;
  for (int i = 0; i < 100000; ++i) {
    IpBytes probe;
    if (i % 2 == 0) {
      probe = gen.random_in(windows[gen.rng()() % windows.size()].first);
    } else if (!gen.boundary(list[gen.rng()() % list.size()], probe)) {
      continue;
    }
    bool naive = false;
    for (const IpRange& r : list) naive = naive || r.contains(probe);
    ASSERT_EQ(set.contains(probe), naive) << Randomized::text(probe);
    hits += naive;
    ++checked;
    if (probe.family == AF_INET) {  // the same address as ::ffff:a.b.c.d
      IpBytes mapped = probe;
      mapped.family = AF_INET6;
      mapped.bytes[10] = mapped.bytes[11] = 0xff;
      ASSERT_EQ(set.contains(mapped), naive) << Randomized::text(probe);
    }
  }
  // Both outcomes well represented, or the comparison proves little.
  EXPECT_GT(hits, checked / 5);
  EXPECT_LT(hits, checked * 4 / 5);
}

TEST(PrefixSet, MatchesNaiveLoopOnRandomPrefixes) {
  compare_with_naive({
      {{"10.0.0.0", 96 + 12}, 700},
      {{"0.0.0.0", 96 + 0}, 60},
      {{"192.168.0.0", 96 + 20}, 300},
      {{"2001:db8::", 32}, 500},
      {{"2001:db8:1:2:3:4::", 96}, 250},
      {{"2001:db8:1:2:3:4:5:0", 112}, 150},
      {{"::", 0}, 40},
  });
}

// Lists inside one network each: the index spans only that network, and addresses below and
// above it must still be answered.
TEST(PrefixSet, MatchesNaiveLoopOnNarrowLists) {
  compare_with_naive({
      {{"10.0.0.0", 96 + 12}, 700},
      {{"2001:db8::", 32}, 800},
      {{"2001:db8:1:2:3:4::", 96}, 500},
      {{"0.0.0.0", 96 + 0}, 0},
      {{"::", 0}, 0},
  });
}

}  // namespace
}  // namespace usher::protect
