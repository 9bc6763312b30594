#pragma once
// Durations as written in config and on the command line: "500ms", "10s", "2m", "1h".
#include <chrono>
#include <string_view>

#include "base/expected.h"

namespace usher {

using Millis = std::chrono::milliseconds;

Expected<Millis> parse_duration(std::string_view text);

// Sizes: "512", "8KiB", "16k", "1MiB", "1m".
Expected<size_t> parse_size(std::string_view text);

}  // namespace usher
