#pragma once
// One worker: one thread, one reactor, its own listening sockets (SO_REUSEPORT), buffers and
// upstream connections. Nothing here is shared with other workers but the PoolStates.
#include <atomic>
#include <memory>
#include <span>
#include <thread>
#include <vector>

#include "codec/http1/message.h"
#include "config/config.h"
#include "log/access_log.h"
#include "metrics/registry.h"
#include "net/buffer_pool.h"
#include "net/reactor.h"
#include "net/socket.h"
#include "proxy/l7/upstream_pool.h"
#include "proxy/listener_routes.h"
#include "proxy/pool_state.h"

namespace usher::proxy {

// A client connection known to its worker, so draining can close the idle ones.
struct SessionLink {
  SessionLink* prev = nullptr;
  SessionLink* next = nullptr;
  net::Socket* client = nullptr;
  bool idle = true;  // waiting between requests: safe to close on drain
};

class Worker {
 public:
  Worker(const config::Config& config, std::vector<PoolState*> pools, uint32_t backend_count,
         metrics::Shard& metrics, log::Channel* access_log, std::unique_ptr<net::Reactor> reactor);
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;
  ~Worker();

  // Control thread: binds this worker's listening sockets; the error text is empty on success.
  std::string bind_listeners();
  void start();
  // Any thread.
  void begin_drain();
  void stop();
  void join();
  size_t session_count() const { return session_count_.load(std::memory_order_relaxed); }

  // Worker thread only, for sessions.
  const config::Config& config() const { return config_; }
  net::Reactor& reactor() { return *reactor_; }
  net::BufferPool& buffers() { return buffers_; }
  l7::UpstreamPool& upstreams() { return upstreams_; }
  std::span<http1::Header> header_scratch() { return header_scratch_; }
  http1::HeadLimits head_limits() const;
  const ListenerRoutes& listener(size_t index) const { return listeners_routes_[index]; }
  metrics::Shard& metrics() { return metrics_; }
  log::Channel* access_log() { return access_log_; }  // null when the access log is off
  bool draining() const { return draining_seen_; }
  // A fresh 64-bit random number (xorshift64*), for the random algorithms.
  uint64_t random() {
    random_state_ ^= random_state_ >> 12;
    random_state_ ^= random_state_ << 25;
    random_state_ ^= random_state_ >> 27;
    return random_state_ * 0x2545F4914F6CDD1DULL;
  }
  void add_session(SessionLink& link);
  void remove_session(SessionLink& link);

 private:
  void run();
  void on_wake();
  void on_idle();

  const config::Config& config_;
  std::vector<PoolState*> pools_;
  std::vector<ListenerRoutes> listeners_routes_;
  metrics::Shard& metrics_;
  log::Channel* access_log_;
  std::unique_ptr<net::Reactor> reactor_;
  net::BufferPool buffers_;
  l7::UpstreamPool upstreams_;
  std::vector<http1::Header> header_scratch_;
  std::vector<int> listen_fds_;
  std::vector<std::unique_ptr<net::Socket>> listeners_;
  SessionLink sessions_;  // sentinel of a circular list
  std::atomic<size_t> session_count_{0};
  std::atomic<bool> drain_requested_{false};
  bool draining_seen_ = false;
  size_t released_since_trim_ = 0;
  uint64_t random_state_;
  size_t session_churn_ = 0;
  uint64_t last_trim_ms_ = 0;
  std::thread thread_;
};

size_t buffer_size_for(const config::Limits& limits);

}  // namespace usher::proxy
