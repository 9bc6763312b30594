#pragma once
// The cluster thread: what several ushers share, kept off the workers' loops. It owns the one
// Redis connection of the process, answers the workers' lease asks for cluster-wide rate limits
// (pipelined, one round trip for all asks of a moment), notices Redis going away and coming back,
// and writes the health file a VRRP daemon watches.
//
// Workers talk to it through their WorkerPort: two single-producer rings and an eventfd, so a
// worker never takes a lock or waits; answers come back through the worker's reactor wake().
#include <atomic>
#include <cstdint>
#include <ctime>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "base/address.h"
#include "cluster/health_file.h"
#include "cluster/health_share.h"
#include "cluster/redis_link.h"
#include "cluster/shared_limit.h"
#include "cluster/spsc_ring.h"
#include "config/config.h"
#include "net/reactor.h"

namespace usher::cluster {

struct LeaseRequest {
  std::shared_ptr<SharedLimit> limit;
  LeaseAsk ask;
};

struct LeaseReply {
  std::shared_ptr<SharedLimit> limit;
  LeaseAnswer answer;
  bool unanswered = false;  // Redis could not be asked: decide without it
};

class Service;

// One worker's link to the cluster thread.
class WorkerPort {
 public:
  WorkerPort(Service& service, net::Reactor& reactor, size_t index);
  size_t index() const { return index_; }
  bool redis_up() const;
  // Worker thread: false when the ring is full (the caller decides without the cluster).
  bool send(LeaseRequest request);
  // Worker thread, on its wake: the answers that came reach their keys and wake the requests
  // waiting on them.
  void deliver();

 private:
  friend class Service;
  Service& service_;
  net::Reactor& reactor_;
  size_t index_;
  SpscRing<LeaseRequest> requests_{4096};
  SpscRing<LeaseReply> replies_{8192};
};

class Service {
 public:
  Service();
  Service(const Service&) = delete;
  Service& operator=(const Service&) = delete;
  ~Service();

  // Before start(): one port per worker, in worker order.
  WorkerPort& add_worker(net::Reactor& reactor);
  // Whether this usher is fit to hold a floating address (nullopt: not serving yet). Called on
  // the cluster thread.
  void set_fitness(std::function<std::optional<bool>()> fitness);
  // Any thread: the cluster settings of the generation now live, and the rotation periods of its
  // listeners whose session tickets come from the cluster.
  void configure(const config::Config& config);
  // Any thread: the backends whose checks the cluster shares (cluster.share_health), as the
  // health checker of the generation now live probes them.
  void share_health(std::vector<SharedBackend> backends);
  void start();
  // Writes the health file unfit first (a stopping usher gives the address up), then ends.
  void stop();

  bool redis_configured() const { return configured_.load(std::memory_order_relaxed); }
  bool redis_up() const { return up_.load(std::memory_order_relaxed); }
  uint64_t redis_round_trips() const { return round_trips_.load(std::memory_order_relaxed); }
  uint64_t leases_granted() const { return granted_.load(std::memory_order_relaxed); }
  uint64_t leases_refused() const { return refused_.load(std::memory_order_relaxed); }

  // Worker thread: a request is in a ring.
  void wake();

 private:
  void run();
  void adopt_settings();
  void keep_link(uint64_t now_ms);
  std::string prepare_link();
  void serve(std::vector<std::pair<WorkerPort*, LeaseRequest>>& batch);
  LeaseReply read_lease(LeaseRequest request);
  void reply(WorkerPort& port, LeaseReply reply);
  void set_up(bool up, const std::string& why);
  void keep_ticket_keys(uint64_t now_ms);
  void keep_health(uint64_t now_ms);
  void write_health(bool fit);
  bool fetch_ticket_keys(std::time_t period, std::time_t now);

  int wake_fd_ = -1;
  std::vector<std::unique_ptr<WorkerPort>> ports_;
  std::function<std::optional<bool>()> fitness_;
  std::thread thread_;
  std::atomic<bool> stopping_{false};

  std::mutex settings_mutex_;  // control thread vs cluster thread; never a worker
  struct Settings {
    config::Cluster cluster;
    std::vector<std::time_t> ticket_periods;  // seconds, each once
  };
  std::optional<Settings> pending_;
  std::optional<std::vector<SharedBackend>> pending_health_;

  // Cluster thread only.
  config::Cluster settings_;
  std::vector<std::time_t> ticket_periods_;
  uint64_t next_tickets_ms_ = 0;
  RedisLink link_;
  std::string script_sha_;
  std::string health_sha_;
  HealthShare health_share_;
  uint64_t next_health_ms_ = 0;
  uint64_t next_connect_ms_ = 0;
  bool down_logged_ = false;
  HealthFile health_file_;
  std::optional<bool> last_fit_;  // as last logged

  std::atomic<bool> configured_{false};
  std::atomic<bool> up_{false};
  std::atomic<uint64_t> round_trips_{0};
  std::atomic<uint64_t> granted_{0};
  std::atomic<uint64_t> refused_{0};
};

}  // namespace usher::cluster
