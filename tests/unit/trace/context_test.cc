#include "trace/context.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <set>
#include <string>
#include <vector>

namespace usher::trace {
namespace {

constexpr std::string_view kValid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

TEST(Traceparent, ReadsTheSpecExample) {
  const auto p = parse_traceparent(kValid);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->trace.high, 0x4bf92f3577b34da6u);
  EXPECT_EQ(p->trace.low, 0xa3ce929d0e0e4736u);
  EXPECT_EQ(p->span, 0x00f067aa0ba902b7u);
  EXPECT_TRUE(p->sampled());
  const auto unsampled =
      parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00");
  ASSERT_TRUE(unsampled);
  EXPECT_FALSE(unsampled->sampled());
  // Flags other than sampled are kept as read; only bit 0 decides.
  const auto other_flags =
      parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-02");
  ASSERT_TRUE(other_flags);
  EXPECT_FALSE(other_flags->sampled());
}

TEST(Traceparent, RefusesWhatTheSpecCallsInvalid) {
  const std::string_view invalid[] = {
      "",
      "00",
      // all-zero ids
      "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
      "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
      // uppercase hex is not allowed
      "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01",
      // version ff, and version 00 with more after it
      "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01 ",
      // short or long fields, wrong separators, non-hex
      "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
      "00-4bf92f3577b34da6a3ce929d0e0e47360-0f067aa0ba902b7-01",
      "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
      "00-4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7-01",
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7_01",
      "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
      "0x-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",
      "00-+bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
      // a later version must continue with '-'
      "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
  };
  for (std::string_view v : invalid) EXPECT_FALSE(parse_traceparent(v)) << v;
}

TEST(Traceparent, ALaterVersionIsReadByItsVersion00Fields) {
  EXPECT_TRUE(parse_traceparent("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
  const auto p =
      parse_traceparent("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-comes");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->span, 0x00f067aa0ba902b7u);
}

TEST(Traceparent, WritesVersion00AndReadsItBack) {
  char out[kTraceparentLength];
  const TraceId id{0x0123456789abcdefu, 0xfedcba9876543210u};
  write_traceparent(id, 0x1u, true, out);
  EXPECT_EQ(std::string_view(out, sizeof out),
            "00-0123456789abcdeffedcba9876543210-0000000000000001-01");
  write_traceparent(id, 0xabcu, false, out);
  const auto back = parse_traceparent({out, sizeof out});
  ASSERT_TRUE(back);
  EXPECT_EQ(back->trace, id);
  EXPECT_EQ(back->span, 0xabcu);
  EXPECT_FALSE(back->sampled());
  EXPECT_EQ(std::string_view(out + kSpanIdOffset, 16), "0000000000000abc");
}

TEST(Traceparent, HexDigitsOfAnyValue) {
  IdGenerator ids;
  std::vector<uint64_t> values = {0,
                                  1,
                                  9,
                                  10,
                                  15,
                                  16,
                                  0xffffffffffffffffu,
                                  0x0123456789abcdefu,
                                  0xa0b1c2d3e4f50617u,
                                  0x9999999999999999u};
  for (int i = 0; i < 1000; ++i) values.push_back(ids.next());
  for (uint64_t v : values) {
    char expected[17], out[16];
    std::snprintf(expected, sizeof expected, "%016llx", static_cast<unsigned long long>(v));
    write_hex(v, out);
    EXPECT_EQ(std::string_view(out, 16), std::string_view(expected, 16)) << v;
  }
}

TEST(Tracestate, ShortListsTravelAsTheyCame) {
  char out[kMaxTracestate];
  const std::string_view one[] = {"rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"};
  EXPECT_EQ(std::string_view(out, bound_tracestate(one, out)), one[0]);
  // Two fields are one list (RFC 9110 §5.3).
  const std::string_view two[] = {"rojo=00f067aa0ba902b7", "congo=t61rcWkgMzE"};
  EXPECT_EQ(std::string_view(out, bound_tracestate(two, out)),
            "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE");
  const std::string_view empty[] = {""};
  EXPECT_EQ(bound_tracestate(empty, out), 0u);
}

TEST(Tracestate, LongListsLoseLongMembersFirstThenMembersFromTheRight) {
  char out[kMaxTracestate];
  const std::string big = "big=" + std::string(200, 'x');
  std::string list = "a=1," + big;
  for (int i = 0; i < 40; ++i) list += ",k" + std::to_string(i) + "=" + std::string(10, 'v');
  const std::string_view fields[] = {list};
  const std::string_view kept(out, bound_tracestate(fields, out));
  EXPECT_LE(kept.size(), kMaxTracestate);
  EXPECT_TRUE(kept.starts_with("a=1,k0=vvvvvvvvvv,k1="));
  EXPECT_EQ(kept.find("big="), std::string_view::npos);
  EXPECT_FALSE(kept.ends_with(","));
  // Whole members only: the last one kept is complete.
  EXPECT_TRUE(kept.ends_with("=vvvvvvvvvv"));
  EXPECT_EQ(kept.find("k39="), std::string_view::npos);
}

TEST(Sampling, ParentBasedWhenTheClientSentAValidParent) {
  const TraceId id{1, 2};
  const Parent sampled{id, 7, 1};
  const Parent not_sampled{id, 7, 0};
  EXPECT_TRUE(sampled_at_start(sampled, id, 0.0));
  EXPECT_FALSE(sampled_at_start(not_sampled, id, 1.0));
}

TEST(Sampling, NewTracesBySharedRatioOfTheirIds) {
  EXPECT_TRUE(sampled_at_start(std::nullopt, {0, ~0ull}, 1.0));
  EXPECT_FALSE(sampled_at_start(std::nullopt, {0, 0}, 0.0));
  EXPECT_TRUE(sampled_at_start(std::nullopt, {0, 1ull << 60}, 0.1));   // 0.0625 < 0.1
  EXPECT_FALSE(sampled_at_start(std::nullopt, {0, 1ull << 62}, 0.1));  // 0.25
  IdGenerator ids;
  int sampled = 0;
  constexpr int kTraces = 100000;
  for (int i = 0; i < kTraces; ++i) {
    sampled += sampled_at_start(std::nullopt, {ids.next(), ids.next()}, 0.1);
  }
  EXPECT_NEAR(sampled, kTraces / 10, kTraces / 100);  // 10 % within 1 point
}

TEST(Sampling, ErrorsAndSlowRequestsAreExportedWhateverWasSampled) {
  EXPECT_TRUE(exported_at_end(true, 200, 0.001, 1.0));
  EXPECT_FALSE(exported_at_end(false, 200, 0.001, 1.0));
  EXPECT_FALSE(exported_at_end(false, 404, 0.001, 1.0));
  EXPECT_TRUE(exported_at_end(false, 502, 0.001, 1.0));
  EXPECT_TRUE(exported_at_end(false, 503, 0.001, 1.0));
  EXPECT_TRUE(exported_at_end(false, 200, 1.0, 1.0));
  EXPECT_FALSE(exported_at_end(false, 200, 0.999, 1.0));
}

TEST(IdGenerator, NeverZeroAndNotRepeated) {
  IdGenerator a, b;
  std::set<uint64_t> seen;
  for (int i = 0; i < 10000; ++i) {
    const uint64_t x = a.next(), y = b.next();
    EXPECT_NE(x, 0u);
    EXPECT_TRUE(seen.insert(x).second);
    EXPECT_TRUE(seen.insert(y).second);  // two generators are seeded apart
  }
}

}  // namespace
}  // namespace usher::trace
