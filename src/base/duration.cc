#include "base/duration.h"

#include <charconv>
#include <string>

namespace usher {

namespace {

struct NumberAndUnit {
  uint64_t number;
  std::string_view unit;
};

Expected<NumberAndUnit> split_number(std::string_view text, std::string_view what) {
  uint64_t number = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), number);
  if (ec != std::errc() || end == text.data()) {
    return Error{"invalid " + std::string(what) + " '" + std::string(text) + "'"};
  }
  return NumberAndUnit{number, text.substr(end - text.data())};
}

}  // namespace

Expected<Millis> parse_duration(std::string_view text) {
  auto parsed = split_number(text, "duration");
  if (!parsed) return parsed.error();
  const auto [n, unit] = *parsed;
  constexpr uint64_t kMax = uint64_t{1} << 40;
  if (n > kMax) return Error{"duration '" + std::string(text) + "' is too large"};
  if (unit == "ms") return Millis(n);
  if (unit == "s") return Millis(n * 1000);
  if (unit == "m") return Millis(n * 60'000);
  if (unit == "h") return Millis(n * 3'600'000);
  return Error{"invalid duration '" + std::string(text) + "': use a number with ms, s, m or h"};
}

Expected<size_t> parse_size(std::string_view text) {
  auto parsed = split_number(text, "size");
  if (!parsed) return parsed.error();
  const auto [n, unit] = *parsed;
  constexpr uint64_t kMax = uint64_t{1} << 40;
  if (n > kMax) return Error{"size '" + std::string(text) + "' is too large"};
  if (unit.empty() || unit == "B") return size_t{n};
  if (unit == "k" || unit == "K" || unit == "KiB") return size_t{n} << 10;
  if (unit == "m" || unit == "M" || unit == "MiB") return size_t{n} << 20;
  return Error{"invalid size '" + std::string(text) + "': use bytes, KiB or MiB"};
}

}  // namespace usher
