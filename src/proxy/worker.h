#pragma once
// One worker: one thread, one reactor, its own listening sockets (SO_REUSEPORT), buffers and
// upstream connections. Nothing here is shared with other workers but the generations (pool
// states) and the metrics registry's numbering.
//
// The worker serves the newest generation it was offered: it switches at its next loop turn,
// opening the listeners the generation adds and closing those it removes; requests that began
// before keep theirs (GenerationRef).
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
#include "net/task.h"
#include "proxy/generation.h"
#include "proxy/l7/upstream_pool.h"
#include "proxy/pool_queue.h"
#include "trace/span.h"

namespace usher::cluster {
class WorkerPort;
}

namespace usher::proxy {

class Worker;
struct Endpoint;
namespace h2 {
class BackendSessions;
}
namespace l4 {
class Outbox;
}
namespace l7 {
struct TunnelControl;
}

// Serves one accepted connection: the protocol handler a listener's `protocol` chooses.
using ConnectionHandler = net::Task<void> (*)(Worker& worker, int fd, Endpoint& endpoint);

// One listening address of this worker. Kept for the worker's life (connections point at it);
// a reload that removes its listener closes its socket.
struct Endpoint {
  Address listen;
  bool datagram = false;  // a udp listener's socket: read by l4::serve_udp, not accepted on
  std::unique_ptr<net::Socket> socket;
  ConnectionHandler handler = nullptr;
  int listener = -1;            // its index in the current generation's listeners; -1 once removed
  bool stopping = false;        // accepts no more: its accept loop ends and closes the socket
  uint64_t last_report_ms = 0;  // when its accept failures were last logged
  uint64_t unreported_failures = 0;  // since then
};

// A client connection known to its worker, so draining can close the idle ones.
struct SessionLink {
  SessionLink* prev = nullptr;
  SessionLink* next = nullptr;
  net::Socket* client = nullptr;
  const Endpoint* endpoint = nullptr;
  bool idle = true;  // waiting between requests: safe to close on drain
  // A WebSocket tunnel under way, which the drain's end closes; once its end was asked, the
  // session counts in Worker::ending_tunnels_ until it goes.
  l7::TunnelControl* tunnel = nullptr;
  bool tunnel_ending = false;
};

class Worker {
 public:
  // `limits` size the buffers for the life of the worker.
  Worker(const config::Limits& limits, metrics::Shard& metrics, log::Channel& access_log,
         trace::Channel& trace, std::unique_ptr<net::Reactor> reactor);
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;
  ~Worker();

  // Control thread: the generation to serve next, with its listening sockets bound for this
  // worker. The worker takes it at its next loop turn; generation_served() then says so.
  void offer(std::unique_ptr<WorkerGeneration> next);
  uint64_t generation_served() const { return served_.load(std::memory_order_acquire); }
  void start();
  // Any thread.
  void begin_drain();
  // Any thread, at the drain's end: every WebSocket tunnel is ended with a Close frame (see
  // l7::TunnelControl); tunnels_ended() once their sessions have all gone.
  void end_tunnels();
  bool tunnels_ended() const;
  void stop();
  void join();
  size_t session_count() const { return session_count_.load(std::memory_order_relaxed); }
  // Accept loops still running: a draining listener's loop ends once io_uring has handed over
  // the last connection it took (its frame would be left behind if the worker stopped before).
  size_t accept_loops() const { return accept_loops_.load(std::memory_order_relaxed); }
  void count_accept_loop(int delta) {
    accept_loops_.fetch_add(static_cast<size_t>(delta), std::memory_order_relaxed);
  }
  size_t buffer_size() const { return buffers_.buffer_size(); }

  // Worker thread only, for sessions.
  GenerationRef generation() { return {*this, *current_}; }
  const WorkerGeneration& current() const { return *current_; }
  void release(WorkerGeneration* generation);  // its last GenerationRef went
  net::Reactor& reactor() { return *reactor_; }
  net::BufferPool& buffers() { return buffers_; }
  l7::UpstreamPool& upstreams() { return upstreams_; }
  h2::BackendSessions& h2_backends() { return *h2_backends_; }
  PoolQueue& pool_queue() { return pool_queue_; }
  std::span<http1::Header> header_scratch() { return header_scratch_; }
  metrics::Shard& metrics() { return metrics_; }
  // Where udp datagrams wait for the end of the loop turn; made by the first udp listener.
  l4::Outbox& outbox();
  log::Channel& access_log() { return access_log_; }
  trace::Channel& trace() { return trace_; }
  bool draining() const { return draining_seen_; }
  // The link to the cluster thread (cluster-wide rate limits); set before start().
  void set_cluster_port(cluster::WorkerPort& port) { cluster_port_ = &port; }
  cluster::WorkerPort* cluster_port() { return cluster_port_; }
  // A fresh 64-bit random number (xorshift64*), for the random algorithms.
  uint64_t random() {
    random_state_ ^= random_state_ >> 12;
    random_state_ ^= random_state_ << 25;
    random_state_ ^= random_state_ >> 27;
    return random_state_ * 0x2545F4914F6CDD1DULL;
  }
  void add_session(SessionLink& link);
  void remove_session(SessionLink& link);
  // A WebSocket tunnel begins on the session (ended at once if end_tunnels() came), and ends.
  void add_tunnel(SessionLink& link, l7::TunnelControl& tunnel);
  void remove_tunnel(SessionLink& link) { link.tunnel = nullptr; }

 private:
  void run();
  void on_wake();
  void on_idle();
  void owe_memory(uint64_t now);
  void adopt(std::unique_ptr<WorkerGeneration> next);
  void open_endpoints(WorkerGeneration& next);
  void add_endpoint(const config::Listener& listener, size_t index, int fd);
  void close_endpoint(Endpoint& endpoint, bool draining);
  void close_idle_sessions(const Endpoint* of);  // null: every endpoint's
  void end_tunnel(SessionLink& link);

  metrics::Shard& metrics_;
  log::Channel& access_log_;
  trace::Channel& trace_;
  std::unique_ptr<net::Reactor> reactor_;
  net::BufferPool buffers_;
  l7::UpstreamPool upstreams_;
  std::unique_ptr<h2::BackendSessions> h2_backends_;
  PoolQueue pool_queue_;
  std::vector<http1::Header> header_scratch_;
  std::unique_ptr<l4::Outbox> outbox_;
  cluster::WorkerPort* cluster_port_ = nullptr;
  std::vector<std::unique_ptr<Endpoint>> endpoints_;
  std::vector<std::unique_ptr<WorkerGeneration>> generations_;  // the current one and any in use
  WorkerGeneration* current_ = nullptr;
  std::atomic<WorkerGeneration*> offered_{nullptr};
  std::atomic<uint64_t> served_{0};
  SessionLink sessions_;  // sentinel of a circular list
  std::atomic<size_t> session_count_{0};
  std::atomic<size_t> accept_loops_{0};
  std::atomic<bool> drain_requested_{false};
  bool draining_seen_ = false;
  std::atomic<bool> end_tunnels_requested_{false};
  bool end_tunnels_seen_ = false;
  std::atomic<bool> tunnels_asked_{false};  // every tunnel of the worker was asked to end
  std::atomic<size_t> ending_tunnels_{0};   // sessions whose tunnel was asked to end
  uint64_t random_state_;
  bool memory_owed_ = false;  // the allocator may hold pages a burst needed (see on_idle)
  uint64_t owed_since_ms_ = 0;
  uint64_t last_churn_ms_ = 0;  // a connection opened or closed
  uint64_t last_buffer_trim_ms_ = 0;
  std::thread thread_;
};

size_t buffer_size_for(const config::Limits& limits);

// Control thread: a listening socket (SO_REUSEPORT) for one worker, TCP or (datagram) UDP; -1
// with `error` set.
int bind_listener(const Address& address, bool datagram, std::string& error);

}  // namespace usher::proxy
