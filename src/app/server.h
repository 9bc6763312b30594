#pragma once
// The process: worker threads, the health checker and the admin listener on their own threads,
// and the control thread (the caller of run()), which owns signals and the drain. Pools' shared
// state lives here for the whole run.
#include <memory>
#include <string>
#include <vector>

#include "admin/admin.h"
#include "config/config.h"
#include "health/checker.h"
#include "log/access_log.h"
#include "metrics/registry.h"
#include "proxy/pool_state.h"
#include "proxy/worker.h"

namespace usher::app {

class Server {
 public:
  explicit Server(config::Config config);
  ~Server();

  // Binds every listener, runs the workers and blocks until SIGTERM/SIGINT have drained them.
  // Returns the process exit code.
  int run();

 private:
  bool drained(uint64_t started_ms) const;
  bool all_sessions_ended() const;
  std::vector<proxy::PoolState*> pool_views() const;
  std::vector<std::unique_ptr<net::Reactor>> make_reactors(unsigned count);

  config::Config config_;
  std::vector<std::unique_ptr<proxy::PoolState>> pools_;
  std::unique_ptr<metrics::Registry> metrics_;
  std::unique_ptr<log::AccessLog> access_log_;
  std::vector<std::unique_ptr<proxy::Worker>> workers_;
  std::unique_ptr<health::Checker> checker_;
  std::unique_ptr<admin::AdminServer> admin_;
  std::string reactor_error_;    // io_uring asked for and refused: run() fails with it
  std::string io_backend_note_;  // why `auto` chose epoll
};

// Blocks the signals the control thread handles; call before any thread starts.
void block_control_signals();

}  // namespace usher::app
