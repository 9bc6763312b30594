#pragma once
// The access log: one line per request, JSON or nginx's "combined". Workers never write to the
// file: each appends lines to its own buffer, and full buffers (or every 100 ms) go to a writer
// thread through a single-producer single-consumer ring: when a buffer is full, when its oldest
// line is 100 ms old, or when the worker has nothing else to do. When the writer is behind (a slow
// disk, a pipe nobody reads) the worker drops the buffer and counts its lines instead of waiting.
//
// The log exists whether or not a generation logs: whether a request is logged, and in which
// format, is its generation's choice, and a reload may point the writer at another sink.
#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "config/config.h"

namespace usher::log {

// What one finished request contributes to its line. Views valid for the append call only.
struct RequestRecord {
  std::string_view client;
  std::string_view method;
  std::string_view host;
  std::string_view target;
  std::string_view referer;
  std::string_view user_agent;
  std::string_view request_id;
  std::string_view protocol = "HTTP/1.1";  // HTTP/1.0, HTTP/1.1 or HTTP/2
  int status = 0;
  uint64_t bytes_sent = 0;
  uint64_t bytes_received = 0;
  double duration_seconds = 0;
  double upstream_seconds = -1;  // below 0: no backend answered
  std::string_view listener;
  std::string_view route;
  std::string_view pool;
  std::string_view backend;
  uint32_t retries = 0;
  std::string_view tls_version;  // empty on plain HTTP: the three TLS fields are left out
  std::string_view tls_cipher;
  std::string_view sni;
  uint32_t queue_ms = 0;         // waited in a pool's queue for a backend with room
  std::string_view guard;        // the protection that answered or closed it; empty: none
  bool located = false;          // a geoip database is configured: geo_country is written
  std::string_view geo_country;  // the client's country code by it; empty: not in it
  std::string_view pick;         // why its backend (proxy/l7/pick_trace.h); empty: not worked out
};

// What one finished layer-4 connection (a tcp listener's) contributes to its line.
struct ConnectionRecord {
  std::string_view client;  // the address and port it came from (after a PROXY header)
  std::string_view listener;
  std::string_view route;
  std::string_view pool;
  std::string_view backend;  // empty: none was reached
  std::string_view sni;      // the ClientHello's server name, when the listener routes by it
  std::string_view end;      // how it ended (metrics::kTcpEnds)
  std::string_view failure;  // with end "error": which side failed and how ("backend ECONNRESET")
  uint64_t bytes_from_client = 0;
  uint64_t bytes_to_client = 0;
  double duration_seconds = 0;
  double connect_seconds = -1;  // below 0: no backend connected
};

// The current second as both formats print it, formatted once a second rather than per line.
struct SecondText {
  int64_t second = -1;
  char iso[20] = {};       // 2026-11-23T21:42:13
  char combined[27] = {};  // 23/Nov/2026:21:42:13 +0000
};

// Appends one line, newline included. `now` is the wall-clock time of the response.
void format_line(config::AccessLog::Format format, const RequestRecord& record,
                 std::chrono::system_clock::time_point now, SecondText& clock, std::string& out);

// The same for a connection: JSON, or for `combined` nginx's stream "basic" format with the
// backend and how it ended added.
void format_connection_line(config::AccessLog::Format format, const ConnectionRecord& record,
                            int64_t millis, const SecondText& clock, std::string& out);

// A worker's side of the log.
class Channel {
 public:
  static constexpr size_t kBufferBytes = 64 * 1024;
  static constexpr size_t kSlots = 4;
  static constexpr std::chrono::milliseconds kOldest{100};

  Channel();

  // Worker thread.
  void append(config::AccessLog::Format format, const RequestRecord& record);
  void append(config::AccessLog::Format format, const ConnectionRecord& record);
  void flush();
  bool empty() const { return current_.empty(); }  // no line waits for a flush
  // Flushes when the oldest line waiting is 100 ms old: for a worker that stays busy without
  // writing lines (a long transfer), whose loop never goes idle.
  void flush_if_due() {
    if (!current_.empty() && std::chrono::system_clock::now() - oldest_ >= kOldest) flush();
  }

  // Writer thread: writes every handed-over buffer with `write`; returns whether any was there.
  template <typename Write>
  bool drain(Write&& write);

  // Any thread.
  uint64_t lines() const { return lines_.load(std::memory_order_relaxed); }
  uint64_t dropped() const { return dropped_.load(std::memory_order_relaxed); }

 private:
  void appended(std::chrono::system_clock::time_point now);

  std::string current_;
  uint64_t current_lines_ = 0;
  std::chrono::system_clock::time_point oldest_;  // of the lines in current_
  SecondText clock_;
  std::string slots_[kSlots];
  alignas(64) std::atomic<uint64_t> head_{0};  // next slot the writer takes
  alignas(64) std::atomic<uint64_t> tail_{0};  // next slot the worker fills
  std::atomic<uint64_t> lines_{0};
  std::atomic<uint64_t> dropped_{0};
};

template <typename Write>
bool Channel::drain(Write&& write) {
  bool any = false;
  for (uint64_t head = head_.load(std::memory_order_relaxed);
       head != tail_.load(std::memory_order_acquire); ++head) {
    std::string& slot = slots_[head % kSlots];
    write(std::string_view(slot));
    slot.clear();
    head_.store(head + 1, std::memory_order_release);
    any = true;
  }
  return any;
}

class AccessLog {
 public:
  // `config`: the sink the writer opens when it starts.
  AccessLog(const config::AccessLog& config, unsigned workers);
  AccessLog(const AccessLog&) = delete;
  AccessLog& operator=(const AccessLog&) = delete;
  ~AccessLog();

  Channel& channel(unsigned worker) { return *channels_[worker]; }
  void start();
  // Writes what the workers handed over (giving up on a sink that stays blocked) and stops.
  void stop();
  // Any thread (SIGUSR1): the writer reopens the file, for log rotation.
  void reopen() { reopen_.store(true, std::memory_order_relaxed); }
  // Reload thread: opens `next`'s sink now, so that a path that cannot be opened refuses the
  // reload, and hands it to the writer, which first writes out what the workers handed over to
  // the sink they were written for. An unchanged target keeps its file. The problem, or empty.
  std::string retarget(const config::AccessLog& next);

  uint64_t lines() const;
  uint64_t dropped() const;  // lines dropped by workers plus lines the sink refused

 private:
  struct Sink {
    config::AccessLog config;
    int fd = -1;  // -1: off, or a file not open yet
  };

  void run();
  bool drain_all(bool stopping);
  bool open_file();
  void take_pending();
  void write_out(std::string_view bytes, bool stopping);

  Sink sink_;  // writer thread, after start()
  std::vector<std::unique_ptr<Channel>> channels_;
  std::mutex pending_mutex_;
  std::optional<Sink> pending_;  // under pending_mutex_
  config::AccessLog latest_;     // reload thread: the target last asked for
  std::atomic<bool> has_pending_{false};
  std::atomic<bool> stopping_{false};
  std::atomic<bool> reopen_{false};
  std::atomic<uint64_t> refused_bytes_{0};
  std::atomic<uint64_t> refused_lines_{0};
  std::thread thread_;
};

}  // namespace usher::log
