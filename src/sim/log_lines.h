#pragma once
// One line of usher's access log, as the replay needs it: usher's JSON lines and nginx's
// "combined" lines (which carry no duration and no backend).
#include <string_view>

#include "base/expected.h"

namespace usher::sim {

struct LogEntry {
  double end_s = 0;        // seconds since the epoch: the response's end (combined: its second)
  double duration_s = -1;  // below 0: the line carries none
  double queue_s = 0;      // waited in usher's pool queue, part of duration_s
  std::string_view client;
  std::string_view backend;  // empty: usher answered itself, or the line does not say
  bool combined = false;
};

// The entry, or why the line cannot be replayed. Views point into `line`.
Expected<LogEntry> parse_log_line(std::string_view line);

}  // namespace usher::sim
