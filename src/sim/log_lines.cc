#include "sim/log_lines.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <optional>

namespace usher::sim {

namespace {

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

void skip_spaces(std::string_view text, size_t& at) {
  while (at < text.size() && (text[at] == ' ' || text[at] == '\t')) ++at;
}

// Where the value of `"key":` starts. A key inside a string value cannot match: its quotes
// are escaped there.
std::optional<size_t> value_of(std::string_view line, std::string_view key) {
  for (size_t at = line.find(key); at != std::string_view::npos; at = line.find(key, at + 1)) {
    if (at == 0 || line[at - 1] != '"' || at + key.size() >= line.size() ||
        line[at + key.size()] != '"') {
      continue;
    }
    size_t value = at + key.size() + 1;
    skip_spaces(line, value);
    if (value >= line.size() || line[value] != ':') continue;
    ++value;
    skip_spaces(line, value);
    return value;
  }
  return std::nullopt;
}

// A JSON string value as written (escapes left in: it serves as a name and a key).
std::optional<std::string_view> string_field(std::string_view line, std::string_view key) {
  const auto at = value_of(line, key);
  if (!at || *at >= line.size() || line[*at] != '"') return std::nullopt;
  for (size_t end = *at + 1; end < line.size(); ++end) {
    if (line[end] == '\\') {
      ++end;
    } else if (line[end] == '"') {
      return line.substr(*at + 1, end - *at - 1);
    }
  }
  return std::nullopt;
}

std::optional<double> number_field(std::string_view line, std::string_view key) {
  const auto at = value_of(line, key);
  if (!at) return std::nullopt;
  double value = 0;
  const auto [end, error] = std::from_chars(line.data() + *at, line.data() + line.size(), value);
  if (error != std::errc()) return std::nullopt;
  return value;
}

// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil).
int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

// `width` digits at `at`.
std::optional<unsigned> digits(std::string_view text, size_t at, size_t width) {
  if (at + width > text.size()) return std::nullopt;
  unsigned value = 0;
  for (size_t i = at; i < at + width; ++i) {
    if (!is_digit(text[i])) return std::nullopt;
    value = value * 10 + static_cast<unsigned>(text[i] - '0');
  }
  return value;
}

std::optional<double> seconds_of(unsigned year, unsigned month, unsigned day, unsigned h,
                                 unsigned m, unsigned s) {
  if (month < 1 || month > 12 || day < 1 || day > 31 || h > 23 || m > 59 || s > 60) {
    return std::nullopt;
  }
  return static_cast<double>(days_from_civil(year, month, day) * 86400 + h * 3600 + m * 60 + s);
}

// 2026-12-01T21:42:13.123Z
std::optional<double> iso_time(std::string_view t) {
  const auto y = digits(t, 0, 4), mo = digits(t, 5, 2), d = digits(t, 8, 2), h = digits(t, 11, 2),
             mi = digits(t, 14, 2), s = digits(t, 17, 2);
  if (!y || !mo || !d || !h || !mi || !s || t.size() < 20 || t[4] != '-' || t[7] != '-' ||
      t[10] != 'T' || t[13] != ':' || t[16] != ':') {
    return std::nullopt;
  }
  auto seconds = seconds_of(*y, *mo, *d, *h, *mi, *s);
  if (!seconds) return std::nullopt;
  size_t at = 19;
  if (t[at] == '.') {
    double scale = 0.1;
    for (++at; at < t.size() && is_digit(t[at]); ++at, scale /= 10) {
      *seconds += (t[at] - '0') * scale;
    }
  }
  if (at + 1 != t.size() || t[at] != 'Z') return std::nullopt;
  return seconds;
}

Expected<LogEntry> json_entry(std::string_view line) {
  LogEntry entry;
  const auto time = string_field(line, "time");
  if (!time) return Error{"no \"time\""};
  const auto end = iso_time(*time);
  if (!end) return Error{"\"time\" is not like 2026-12-01T21:42:13.123Z"};
  entry.end_s = *end;
  const auto duration_ms = number_field(line, "duration_ms");
  if (!duration_ms || !std::isfinite(*duration_ms) || *duration_ms < 0) {
    return Error{"no \"duration_ms\""};
  }
  entry.duration_s = *duration_ms / 1000;
  const double queue_ms = number_field(line, "queue_ms").value_or(0);
  entry.queue_s = std::isfinite(queue_ms) ? std::clamp(queue_ms / 1000, 0.0, entry.duration_s) : 0;
  const auto client = string_field(line, "client");
  if (!client) return Error{"no \"client\""};
  entry.client = *client;
  entry.backend = string_field(line, "backend").value_or("");
  return entry;
}

// 127.0.0.1 - - [01/Dec/2026:21:42:13 +0000] "GET / HTTP/1.1" 200 5 "-" "curl/7.88.1"
Expected<LogEntry> combined_entry(std::string_view line) {
  static constexpr std::string_view kMonths = "JanFebMarAprMayJunJulAugSepOctNovDec";
  LogEntry entry;
  entry.combined = true;
  const size_t space = line.find(' ');
  const size_t open = line.find(" [");
  if (space == 0 || space == std::string_view::npos || open == std::string_view::npos) {
    return Error{"neither a JSON object nor a combined-format line"};
  }
  entry.client = line.substr(0, space);
  const std::string_view t = line.substr(open + 2);  // 01/Dec/2026:21:42:13 +0000]
  if (t.size() < 27) return Error{"the time is not like [01/Dec/2026:21:42:13 +0000]"};
  const size_t month = kMonths.find(t.substr(3, 3));
  const auto d = digits(t, 0, 2), y = digits(t, 7, 4), h = digits(t, 12, 2), mi = digits(t, 15, 2),
             s = digits(t, 18, 2), zone = digits(t, 22, 4);
  if (!d || !y || !h || !mi || !s || !zone || month == std::string_view::npos || month % 3 ||
      (t[21] != '+' && t[21] != '-') || t[26] != ']') {
    return Error{"the time is not like [01/Dec/2026:21:42:13 +0000]"};
  }
  auto seconds = seconds_of(*y, static_cast<unsigned>(month / 3 + 1), *d, *h, *mi, *s);
  if (!seconds) return Error{"the time is not a date"};
  const double offset = (*zone / 100) * 3600.0 + (*zone % 100) * 60.0;
  entry.end_s = *seconds - (t[21] == '+' ? offset : -offset);
  return entry;
}

}  // namespace

Expected<LogEntry> parse_log_line(std::string_view line) {
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.remove_suffix(1);
  if (line.empty()) return Error{"empty line"};
  if (line.front() == '{') {
    if (line.back() != '}') return Error{"a JSON object cut short"};
    return json_entry(line);
  }
  return combined_entry(line);
}

}  // namespace usher::sim
