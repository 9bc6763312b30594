#pragma once
// The admin listener: health endpoints for orchestrators, metrics, the REST API that steers
// pools and the dashboard (api.h lists the endpoints). It runs on its own thread and reactor,
// away from the workers' request path; what it changes reaches the workers through the pools'
// live state (relaxed atomics).
#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "admin/api.h"
#include "admin/control.h"
#include "admin/sampler.h"
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
  AdminServer(const Address& listen, Control& control, const metrics::Registry& metrics,
              const log::AccessLog* access_log, std::string token);
  AdminServer(const AdminServer&) = delete;
  AdminServer& operator=(const AdminServer&) = delete;
  ~AdminServer();

  // Control thread; empty on success. `inherited`: a listening socket to serve on instead
  // (a binary upgrade's).
  std::string bind(int inherited = -1);
  int listening_fd() const { return listener_->fd(); }
  void start();
  void stop();  // any thread
  void set_draining() { draining_.store(true, std::memory_order_relaxed); }

 private:
  net::Task<void> accept_loop();
  net::Task<void> serve(int fd);

  Address listen_;
  Sampler sampler_;
  ApiContext context_;
  std::unique_ptr<net::Reactor> reactor_;
  std::unique_ptr<net::Socket> listener_;
  std::atomic<bool> draining_{false};
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

}  // namespace usher::admin
