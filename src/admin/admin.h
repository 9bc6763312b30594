#pragma once
// The admin listener: health endpoints for orchestrators and the REST API that steers pools.
// It runs on its own thread and reactor, away from the workers' request path; what it changes
// reaches the workers through the pools' live state (relaxed atomics).
//   GET  /metrics                                 Prometheus text format
//   GET  /livez                                   200 while the process runs
//   GET  /readyz                                  200, or 503 once draining has begun
//   GET  /api/v1/pools                            pools and backends as JSON
//   POST /api/v1/pools/POOL/backends/ADDR/drain   no new requests; in-flight ones finish
//   POST /api/v1/pools/POOL/backends/ADDR/ready   takes a drained backend back
#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "base/address.h"
#include "log/access_log.h"
#include "metrics/registry.h"
#include "net/reactor.h"
#include "net/socket.h"
#include "net/task.h"
#include "proxy/pool_state.h"

namespace usher::admin {

class AdminServer {
 public:
  AdminServer(const Address& listen, std::vector<proxy::PoolState*> pools,
              const metrics::Registry& metrics, const log::AccessLog* access_log);
  AdminServer(const AdminServer&) = delete;
  AdminServer& operator=(const AdminServer&) = delete;
  ~AdminServer();

  std::string bind();  // control thread; empty on success
  void start();
  void stop();  // any thread
  void set_draining() { draining_.store(true, std::memory_order_relaxed); }

 private:
  net::Task<void> accept_loop();
  net::Task<void> serve(int fd);
  std::string respond(std::string_view method, std::string_view target);

  Address listen_;
  std::vector<proxy::PoolState*> pools_;
  const metrics::Registry& metrics_;
  const log::AccessLog* access_log_;
  std::unique_ptr<net::Reactor> reactor_;
  std::unique_ptr<net::Socket> listener_;
  std::atomic<bool> draining_{false};
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

}  // namespace usher::admin
