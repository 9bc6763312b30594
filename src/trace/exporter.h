#pragma once
// The exporter thread: takes finished spans from every worker's ring, batches them (up to
// kBatch spans, or what came within kBatchAge) and POSTs each batch to the collector as OTLP
// JSON with a short timeout; the JSON is made here, once connected, never on a worker. A batch the
// collector did not take is dropped and counted, and for a while after (kBackoff) spans are dropped
// as they come instead of waiting: a collector that is down or slow costs the workers nothing, and
// usher never queues more than the rings hold.
//
// Whether and how a request is traced is its generation's choice (config::Tracing); the
// exporter sends wherever the configuration last loaded says.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "config/config.h"
#include "trace/otlp.h"
#include "trace/span.h"

namespace usher::trace {

class Exporter {
 public:
  static constexpr size_t kBatch = 512;
  static constexpr auto kBatchAge = std::chrono::seconds(1);
  static constexpr auto kPoll = std::chrono::milliseconds(20);
  static constexpr auto kBackoff = std::chrono::seconds(1);
  static constexpr int kTimeoutMs = 2000;

  Exporter(const std::optional<config::Tracing>& tracing, unsigned workers);
  Exporter(const Exporter&) = delete;
  Exporter& operator=(const Exporter&) = delete;
  ~Exporter();

  Channel& channel(unsigned worker) { return *channels_[worker]; }
  void start();
  // Sends what is waiting (one last try, bounded by the timeout) and stops.
  void stop();
  // Reload thread: the collector of the next configuration (nullopt: tracing off).
  void retarget(const std::optional<config::Tracing>& next);

  // Any thread.
  uint64_t exported() const { return exported_.load(std::memory_order_relaxed); }
  uint64_t failures() const { return failures_.load(std::memory_order_relaxed); }
  uint64_t dropped() const;  // by the workers (rings full) and here (batches not taken)

 private:
  void run();
  void collect(std::chrono::steady_clock::time_point now);
  void send_batch(std::chrono::steady_clock::time_point now);

  std::vector<std::unique_ptr<Channel>> channels_;
  std::vector<SpanRecord> batch_;        // exporter thread
  std::vector<SpanRecord> last_server_;  // by channel: the server span whose texts clients take
  std::chrono::steady_clock::time_point batch_started_;
  std::chrono::steady_clock::time_point quiet_until_;  // dropping after a failure until then
  std::chrono::steady_clock::time_point warned_at_;    // a failure was last logged
  std::optional<Collector> collector_;                 // exporter thread's copy
  std::string body_;

  std::mutex mutex_;
  std::condition_variable wake_;
  std::optional<Collector> next_collector_;  // under mutex_
  bool retargeted_ = false;                  // under mutex_
  bool stopping_ = false;                    // under mutex_
  std::atomic<uint64_t> exported_{0};
  std::atomic<uint64_t> failures_{0};
  std::atomic<uint64_t> dropped_{0};
  std::thread thread_;
};

}  // namespace usher::trace
