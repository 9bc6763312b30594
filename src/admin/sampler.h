#pragma once
// Once a second, what the dashboard charts: per backend the request and error rates and the
// p50/p99 response time over that second, and whether it was up; plus health and operator
// events, and a locality-aware pool's change of tier shares (a spill, or its end). Keeps the last
// five minutes. Its own thread; readers take a snapshot under a mutex (the admin side only, never
// the request path).
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "admin/control.h"
#include "metrics/registry.h"
#include "proxy/pool_state.h"

namespace usher::admin {

struct Point {
  uint64_t time_ms;  // wall clock
  double requests_per_second;
  double errors_per_second;  // 5xx responses and tries without a response
  double p50_ms;             // -1 when no request finished in the second
  double p99_ms;
  bool up;
};

struct Event {
  uint64_t time_ms;
  std::string pool;
  std::string backend;
  std::string what;  // "UP -> DOWN", "DRAINING", "TIERS zone 100% -> zone 70%, region 30%", ...
};

class Sampler {
 public:
  static constexpr size_t kPoints = 300;
  static constexpr size_t kEvents = 200;

  Sampler(const metrics::Registry& registry, Control& control);
  ~Sampler();

  void start();
  void stop();
  // Any thread: an operator's action on a backend, stamped now.
  void record(std::string pool, std::string backend, std::string what);

  // JSON: {"interval_ms":1000,"backends":[{"pool","backend","zone"?,"points":[[t,rps,err,p50,
  // p99,up]]}],
  // "events":[...]}, points newer than since_ms only.
  std::string series_json(uint64_t since_ms) const;

  // The newest point of a backend (by its process-wide number), if it has one.
  std::optional<Point> latest(size_t backend) const;

 private:
  struct Backend {
    std::string pool;
    std::string name;
    size_t id = 0;
    proxy::PoolState* state = nullptr;
    uint32_t index = 0;
    metrics::Registry::BackendTotals last;
    bool was_up = true;
    uint32_t went_down = 0;
    uint32_t went_up = 0;
    std::deque<Point> points;
  };

  void run();
  void sample();
  void sample_locality(uint64_t now);
  void follow(std::shared_ptr<const proxy::Generation> generation);

  const metrics::Registry& registry_;
  Control& control_;
  // The generation sampled last, held so that the backends' state pointers stay valid; a
  // backend keeps its points across reloads that keep it (same pool and address).
  std::shared_ptr<const proxy::Generation> generation_;
  std::vector<Backend> backends_;
  std::deque<Event> events_;
  std::map<std::string, std::string> tier_split_;  // by pool: its tiers' shares, as last seen
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace usher::admin
