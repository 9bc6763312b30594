#pragma once
// Active health checks: one thread with its own reactor probes every backend of every pool that
// has a `health` section, once per process (never once per worker), feeds the results to each
// backend's rise/fall machine, publishes the state to the workers through the pool's live
// counters, and logs every check that counts towards a change and every change.
#include <atomic>
#include <memory>
#include <thread>
#include <vector>

#include "balance/live.h"
#include "base/address.h"
#include "config/config.h"
#include "health/shared.h"
#include "net/reactor.h"
#include "net/task.h"
#include "tls/client.h"

namespace usher::health {

// One backend slot to check, and where its state is published. A slot that is not a member of
// its pool (admin state kRemoved: not added yet, or removed) is skipped until it is one; its
// address is read only then.
struct CheckTarget {
  std::string pool;
  const Address* address;
  const config::HealthCheck* check;
  balance::LiveState* pool_live;
  uint32_t backend;
  double panic_percent;                           // the pool's panic threshold, 0 for none
  std::shared_ptr<const tls::ClientContext> tls;  // a TLS pool's, for this thread; else null
  std::shared_ptr<SharedHealth> shared;           // cluster.share_health; else null
};

class Checker {
 public:
  explicit Checker(const std::vector<CheckTarget>& targets);
  Checker(const Checker&) = delete;
  Checker& operator=(const Checker&) = delete;
  ~Checker();

  void start();
  // Any thread: ends every check loop (a probe in flight finishes within its timeout), then joins.
  void stop();

 private:
  struct Target;
  net::Task<void> run(Target& target);
  // The verdict the cluster published, when another instance probes the backend: true when it
  // was taken (and this instance does not probe now).
  static bool take_published(Target& target, const std::string& who);
  static void publish(Target& target, bool was_healthy);
  static void update_panic(const CheckTarget& what);

  std::unique_ptr<net::Reactor> reactor_;
  std::vector<std::unique_ptr<Target>> targets_;
  std::atomic<size_t> running_{0};
  std::thread thread_;
};

}  // namespace usher::health
