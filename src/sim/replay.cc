#include "sim/replay.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <queue>
#include <unordered_map>

#include "balance/balancer.h"
#include "sim/log_lines.h"
#include "sim/quantiles.h"

namespace usher::sim {

namespace {

constexpr size_t kLongestLine = 64 * 1024;
constexpr double kLongestDurationS = 3600;
// How far back in arrival order a line may still reach (see ArrivalOrder).
constexpr double kLongestWindowS = 60;
constexpr uint64_t kProgressEvery = 1 << 16;  // lines

// The log a line at a time, with the line's number and how far into the file it is.
class LineReader {
 public:
  static Expected<LineReader> open(const std::string& path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return Error{path + ": " + std::strerror(errno)};
    // Read twice, so a pipe will not do; and a device would never end.
    if (!S_ISREG(st.st_mode)) return Error{path + ": not a regular file"};
    std::FILE* file = std::fopen(path.c_str(), "re");
    if (!file) return Error{path + ": " + std::strerror(errno)};
    return LineReader(file, static_cast<uint64_t>(st.st_size));
  }
  LineReader(LineReader&& other) noexcept
      : file_(std::exchange(other.file_, nullptr)),
        size_(other.size_),
        buffer_(std::exchange(other.buffer_, nullptr)),
        capacity_(other.capacity_) {}
  LineReader(const LineReader&) = delete;
  ~LineReader() {
    std::free(buffer_);
    if (file_) std::fclose(file_);
  }

  bool next(std::string_view& line) {
    const ssize_t n = ::getline(&buffer_, &capacity_, file_);
    if (n < 0) return false;
    ++number_;
    read_ += static_cast<uint64_t>(n);
    line = {buffer_, static_cast<size_t>(n)};
    return true;
  }
  uint64_t number() const { return number_; }
  uint64_t read() const { return read_; }
  uint64_t size() const { return size_; }

 private:
  LineReader(std::FILE* file, uint64_t size) : file_(file), size_(size) {}

  std::FILE* file_;
  uint64_t size_;
  char* buffer_ = nullptr;
  size_t capacity_ = 0;
  uint64_t number_ = 0;
  uint64_t read_ = 0;
};

// A line's request, or why it cannot be replayed (empty reason and no entry: usher's own answer).
Expected<LogEntry> usable_entry(std::string_view line, const ReplayOptions& options) {
  if (line.size() > kLongestLine) return Error{"longer than 64 KiB"};
  auto entry = parse_log_line(line);
  if (!entry) return entry;
  if (entry->combined && options.duration_s <= 0) {
    return Error{"a combined line carries no duration: give --duration"};
  }
  // A tunnel (WebSocket, CONNECT) or a wrong clock, not a request: it would stretch the
  // replay's span and its arrival window.
  if (entry->duration_s > kLongestDurationS) return Error{"lasted over an hour"};
  return entry;
}

void report(const ReplayProgress& progress, int pass, const LineReader& reader) {
  if (progress && reader.number() % kProgressEvery == 0) {
    progress(pass, reader.read(), reader.size());
  }
}

}  // namespace

// A backend's speed is estimated from its quick requests (the 10th percentile of its service
// times): unlike the mean, it does not grow when the backend was overloaded and requests waited
// inside it, and the mix of requests a backend got matters less there.
Expected<Survey> survey_log(const ReplayOptions& options, const ReplayProgress& progress) {
  auto reader = LineReader::open(options.log);
  if (!reader) return reader.error();
  Survey survey;
  std::unordered_map<std::string, uint32_t> backend_index;
  std::vector<Quantiles> service;
  bool first = true;
  for (std::string_view line; reader->next(line); report(progress, 1, *reader)) {
    ++survey.lines;
    const auto entry = usable_entry(line, options);
    if (!entry) {
      ++survey.unusable;
      if (survey.first_problems.size() < Survey::kProblemsKept) {
        survey.first_problems.push_back({reader->number(), entry.error().message});
      }
      continue;
    }
    if (!entry->combined && entry->backend.empty()) {
      ++survey.without_backend;
      continue;
    }
    ++survey.usable;
    survey.combined = survey.combined || entry->combined;
    const double arrival = entry->end_s - std::max(entry->duration_s, 0.0);
    survey.first_arrival_s = first ? arrival : std::min(survey.first_arrival_s, arrival);
    survey.last_arrival_s = first ? arrival : std::max(survey.last_arrival_s, arrival);
    first = false;
    if (entry->combined) continue;
    auto [it, added] = backend_index.try_emplace(std::string(entry->backend),
                                                 static_cast<uint32_t>(survey.backends.size()));
    if (added) {
      survey.backends.emplace_back(entry->backend);
      service.emplace_back(4096);
    }
    service[it->second].add(entry->duration_s - entry->queue_s);
  }
  if (progress) progress(1, reader->read(), reader->size());
  if (survey.usable == 0) return Error{options.log + ": no line to replay"};
  if (survey.backends.empty() && options.servers == 0) {
    return Error{options.log + ": the lines name no backend: give --servers"};
  }
  std::vector<double> quick;
  for (Quantiles& q : service) quick.push_back(std::max(q.at(0.1), 1e-6));
  const double fastest = quick.empty() ? 1 : *std::min_element(quick.begin(), quick.end());
  for (double q : quick) survey.speeds.push_back(fastest / q);
  return survey;
}

Scenario replay_scenario(const ReplayOptions& options, const Survey& survey) {
  Scenario s;
  s.name = "replay";
  s.seed = options.seed;
  const size_t count = options.servers ? options.servers : survey.backends.size();
  for (size_t i = 0; i < count; ++i) {
    const double speed = survey.speeds.empty() ? 1 : survey.speeds[i % survey.speeds.size()];
    Server server;
    server.concurrency = options.concurrency;
    server.speed = speed;
    s.servers.push_back(server);
  }
  char description[256];
  std::snprintf(description, sizeof description, "%s: %llu requests over %.1f s%s on %zu server%s",
                options.log.c_str(), static_cast<unsigned long long>(survey.usable),
                (survey.last_arrival_s - survey.first_arrival_s) / options.speed,
                options.speed != 1 ? " (traffic sped up)" : "", count, count == 1 ? "" : "s");
  s.description = description;
  return s;
}

namespace {

// The log is written as responses end, so arrivals come out of order by up to the longest
// duration (and by the workers' 100 ms of buffered lines). Requests wait here until no line
// still to come can arrive before them: holding that window's worth of them, the window being
// the longest duration seen plus a second, and at most kLongestWindowS. A request that arrives
// before one already replayed (it lasted longer than the window) is replayed at once, late.
class ArrivalOrder {
 public:
  void add(Request request, double end_s, double duration_s) {
    if (request.arrival_s < released_s_) {
      request.arrival_s = released_s_;
      ++stats_.late;
    }
    pending_.push(request);
    stats_.held_most = std::max<uint64_t>(stats_.held_most, pending_.size());
    latest_end_s_ = std::max(latest_end_s_, end_s);
    window_s_ = std::min(kLongestWindowS, std::max(window_s_, duration_s + 1));
  }
  // The next request whose turn has come; all of them once `draining`.
  bool next(Request& request, bool draining) {
    if (pending_.empty()) return false;
    if (!draining && pending_.top().arrival_s > latest_end_s_ - window_s_) return false;
    request = pending_.top();
    pending_.pop();
    released_s_ = request.arrival_s;
    return true;
  }
  const ReplayStats& stats() const { return stats_; }

 private:
  struct Later {
    bool operator()(const Request& a, const Request& b) const { return a.arrival_s > b.arrival_s; }
  };
  std::priority_queue<Request, std::vector<Request>, Later> pending_;
  double latest_end_s_ = 0;
  double window_s_ = 1;
  double released_s_ = 0;  // arrival of the last request replayed
  ReplayStats stats_;
};

}  // namespace

Expected<std::vector<Result>> replay_log(const ReplayOptions& options, const Survey& survey,
                                         const Scenario& scenario,
                                         const std::vector<std::string>& algorithms,
                                         const ReplayProgress& progress, ReplayStats* stats) {
  const double span_s = (survey.last_arrival_s - survey.first_arrival_s) / options.speed;
  std::vector<Run> runs;
  for (const std::string& algorithm : algorithms) {
    if (auto checked = check_run(scenario, algorithm); !checked) return checked.error();
    runs.emplace_back(scenario, algorithm, span_s);
    if (auto started = runs.back().start(); !started) return started.error();
  }
  auto reader = LineReader::open(options.log);
  if (!reader) return reader.error();
  std::unordered_map<std::string_view, uint32_t> backend_index;
  for (uint32_t i = 0; i < survey.backends.size(); ++i) backend_index[survey.backends[i]] = i;
  ArrivalOrder order;
  auto offer_ready = [&](bool draining) {
    for (Request request; order.next(request, draining);) {
      for (Run& run : runs) run.offer(request);
    }
  };
  for (std::string_view line; reader->next(line); report(progress, 2, *reader)) {
    const auto entry = usable_entry(line, options);
    if (!entry || (!entry->combined && entry->backend.empty())) continue;
    Request request;
    const double duration = entry->combined ? 0 : entry->duration_s;
    request.arrival_s = (entry->end_s - duration - survey.first_arrival_s) / options.speed;
    request.key = balance::hash_key(entry->client);
    if (entry->combined) {
      request.duration_s = options.duration_s;
    } else {
      // A line the survey did not see (the file grew meanwhile) counts at speed 1.
      const auto backend = backend_index.find(entry->backend);
      const double speed = backend == backend_index.end() ? 1 : survey.speeds[backend->second];
      request.duration_s = (entry->duration_s - entry->queue_s) * speed;
    }
    order.add(request, (entry->end_s - survey.first_arrival_s) / options.speed,
              duration / options.speed);
    offer_ready(false);
  }
  offer_ready(true);
  if (progress) progress(2, reader->read(), reader->size());
  if (stats) *stats = order.stats();
  std::vector<Result> results;
  for (Run& run : runs) results.push_back(run.finish());
  return results;
}

}  // namespace usher::sim
