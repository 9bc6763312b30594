#include "sim/log_lines.h"

#include <gtest/gtest.h>

namespace usher::sim {
namespace {

TEST(LogLines, ReadsUshersJsonLine) {
  const auto entry = parse_log_line(
      R"({"time":"2026-12-01T21:42:13.250Z","client":"192.0.2.7","method":"GET","path":"/a\"duration_ms\":9","status":200,"duration_ms":12.5,"upstream_ms":11.0,"backend":"10.0.0.2:80","retries":0,"queue_ms":2.5})"
      "\n");
  ASSERT_TRUE(entry.ok()) << entry.error().message;
  EXPECT_DOUBLE_EQ(entry->end_s, 1796161333.25);  // date -u -d 2026-12-01T21:42:13 +%s
  EXPECT_DOUBLE_EQ(entry->duration_s, 0.0125);    // not the 9 inside the escaped path
  EXPECT_DOUBLE_EQ(entry->queue_s, 0.0025);
  EXPECT_EQ(entry->client, "192.0.2.7");
  EXPECT_EQ(entry->backend, "10.0.0.2:80");
  EXPECT_FALSE(entry->combined);
}

TEST(LogLines, UshersOwnAnswerHasNoBackend) {
  const auto entry = parse_log_line(
      R"({"time":"2026-12-01T21:42:13.000Z","client":"::1","status":404,"duration_ms":0.1,"backend":""})");
  ASSERT_TRUE(entry.ok());
  EXPECT_TRUE(entry->backend.empty());
}

TEST(LogLines, ReadsCombinedLineWithItsZone) {
  const auto entry = parse_log_line(
      R"(198.51.100.4 - - [01/Dec/2026:22:42:13 +0100] "GET / HTTP/1.1" 200 5 "-" "curl/7.88.1")");
  ASSERT_TRUE(entry.ok()) << entry.error().message;
  EXPECT_DOUBLE_EQ(entry->end_s, 1796161333);
  EXPECT_LT(entry->duration_s, 0);
  EXPECT_EQ(entry->client, "198.51.100.4");
  EXPECT_TRUE(entry->combined);
}

TEST(LogLines, SaysWhyALineCannotBeUsed) {
  const std::pair<const char*, const char*> cases[] = {
      {"", "empty line"},
      {R"({"time":"2026-12-01T21:42:13.000Z")", "a JSON object cut short"},
      {R"({"client":"a","duration_ms":1})", "no \"time\""},
      {R"({"time":"yesterday","duration_ms":1})", "\"time\" is not like"},
      {R"({"time":"2026-13-01T21:42:13.000Z","duration_ms":1})", "\"time\" is not like"},
      {R"({"time":"2026-12-01T21:42:13.000Z","client":"a"})", "no \"duration_ms\""},
      {R"({"time":"2026-12-01T21:42:13.000Z","duration_ms":-4,"client":"a"})",
       "no \"duration_ms\""},
      {R"({"time":"2026-12-01T21:42:13.000Z","duration_ms":4})", "no \"client\""},
      {R"({"time":"2026-12-01T21:42:13.000Z","duration_ms":nan,"client":"a"})",
       "no \"duration_ms\""},
      {R"({"time":"2026-12-01T21:42:13.000Z","duration_ms":inf,"client":"a"})",
       "no \"duration_ms\""},
      {"hello", "neither a JSON object nor a combined-format line"},
      {"x [", "the time is not like"},
      {"10.0.0.1 - - [0", "the time is not like"},
      {"10.0.0.1 - - [01/Dec/2026:22:42:13 +01", "the time is not like"},
      {"1.2.3.4 - - [01/Foo/2026:22:42:13 +0100] \"GET /\"", "the time is not like"},
  };
  for (const auto& [line, reason] : cases) {
    const auto entry = parse_log_line(line);
    ASSERT_FALSE(entry.ok()) << line;
    EXPECT_NE(entry.error().message.find(reason), std::string::npos)
        << line << ": " << entry.error().message;
  }
}

}  // namespace
}  // namespace usher::sim
