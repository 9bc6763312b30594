#pragma once
// The process: worker threads, the health checker and the admin listener on their own threads,
// the discovery watches and their queue (while a pool discovers its backends), and the control
// thread (the caller of run()), which owns signals, reloads and the drain.
//
// A reload builds the next generation beside the one serving, hands it to every worker and
// returns once all serve it; requests already under way finish on theirs.
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "admin/admin.h"
#include "admin/control.h"
#include "app/upgrade.h"
#include "cluster/service.h"
#include "config/config.h"
#include "discovery/dns_watch.h"
#include "discovery/file_watch.h"
#include "discovery/queue.h"
#include "health/checker.h"
#include "log/access_log.h"
#include "metrics/registry.h"
#include "proxy/generation.h"
#include "proxy/worker.h"
#include "trace/exporter.h"

namespace usher::app {

class Server final : public admin::Control {
 public:
  // `path`: the file reloads re-read (empty in quick mode). `forced_backend`: an io_backend
  // that overrides the file's.
  Server(config::Config config, std::string path, std::optional<config::IoBackend> forced_backend);
  ~Server() override;

  // Before run(): serve on the listening sockets of the process `takeover` connected to, and
  // tell it to drain once this one serves.
  void take_over(std::unique_ptr<UpgradeTakeover> takeover) { takeover_ = std::move(takeover); }

  // Binds every listener, runs the workers and blocks until SIGTERM/SIGINT have drained them.
  // Returns the process exit code.
  int run();

  std::shared_ptr<const proxy::Generation> generation() const override;
  std::vector<std::string> reload() override;
  ReloadCounts reload_counts() const override;
  std::vector<std::pair<std::string, uint64_t>> discovery_failures() const override;
  std::vector<tls::CertificateInfo> certificates() const override;
  TraceCounts trace_counts() const override;
  ClusterCounts cluster_counts() const override;
  std::optional<bool> fit() const;

 private:
  bool drained(uint64_t started_ms) const;
  bool all_sessions_ended() const;
  std::vector<std::unique_ptr<net::Reactor>> make_reactors(unsigned count,
                                                           config::IoBackend backend);
  // Sockets for each worker, by listener of `next`, for the addresses `serving` has no listener
  // on (-1 for the others); the error when one cannot be bound (then none is kept). A takeover's
  // sockets come first; those beyond one per worker go to `more`.
  std::string bind_new_listeners(const config::Config& next, const config::Config* serving,
                                 std::vector<std::vector<int>>& fds,
                                 std::vector<std::vector<std::pair<size_t, int>>>* more = nullptr);
  // handover.cc: the binary upgrade. Copies of the listening sockets are kept while
  // upgrade_socket is set (reload mutex held), for a successor to take.
  void keep_copies(const config::Config& config, const std::vector<std::vector<int>>& fds,
                   const std::vector<std::vector<std::pair<size_t, int>>>& more);
  void drop_copies_unlisted(const config::Config& config);
  void keep_first_copies(const std::vector<std::vector<int>>& fds,
                         const std::vector<std::vector<std::pair<size_t, int>>>& more);
  std::vector<HandedSocket> copies_to_hand_over();
  bool offer_upgrade();  // false: upgrade_socket cannot be listened on (logged)
  // false: the predecessor still runs but did not confirm it drains (logged).
  bool finish_takeover();
  bool start_admin();  // false: logged
  std::vector<std::string> restart_only_changes(const config::Config& next) const;
  // Each worker's certificates and backend contexts for `config`; problems (and expiry warnings)
  // are logged.
  std::vector<tls::WorkerContexts> build_tls(const config::Config& config,
                                             std::vector<std::string>& problems) const;
  void serve(const std::shared_ptr<const proxy::Generation>& next,
             std::vector<std::vector<int>> fds, std::vector<tls::WorkerContexts> tls);
  void start_health_checks(const proxy::Generation& generation);
  // `geoip`: the database opened for `next` (null without one).
  std::vector<std::string> apply(config::Config next, std::shared_ptr<const geo::Database> geoip);
  // discovery.cc: the serving generation's geoip database, or a new one when its file changed
  // on disk since (then `changed` is set); a file that cannot be opened keeps the old (logged).
  std::shared_ptr<const geo::Database> current_geoip(bool& changed) const;
  // discovery.cc: serves what the watches found (on the queue's thread); aims the watches at
  // the serving generation's files and names (reload mutex held); stops them for good.
  void apply_discovered(discovery::Queue::Batch batch);
  void aim_discovery();
  void aim_dns(const config::Config& config, std::vector<std::string> pools);
  void stop_discovery();
  bool reread_list(config::Pool& pool);  // whether a discovery file's list changed the pool
  void count_discovery_failure(const std::string& pool);
  // run()'s end: the drain, then every thread stopped; the exit code.
  int drain_and_stop();
  // The service manager's one-line status; current_mutex_ held, or before any reload can run.
  std::string serving_status() const;

  std::string path_;
  config::Config first_;  // as loaded at start: what a reload may not change is compared to it
  std::unique_ptr<metrics::Registry> metrics_;
  std::unique_ptr<log::AccessLog> access_log_;
  std::unique_ptr<trace::Exporter> tracer_;
  std::vector<std::unique_ptr<proxy::Worker>> workers_;
  std::vector<std::unique_ptr<tls::Library>> tls_libraries_;  // by worker
  std::unique_ptr<health::Checker> checker_;
  std::unique_ptr<cluster::Service> cluster_;
  std::unique_ptr<admin::AdminServer> admin_;
  std::string reactor_error_;    // io_uring asked for and refused: run() fails with it
  std::string io_backend_note_;  // why `auto` chose epoll
  std::string geoip_error_;      // the first generation's database cannot be opened

  std::mutex reload_mutex_;  // one reload at a time (signal, API)
  mutable std::mutex current_mutex_;
  std::shared_ptr<const proxy::Generation> current_;
  ReloadCounts counts_;                                 // under current_mutex_
  std::map<std::string, uint64_t> discovery_failures_;  // by pool, under current_mutex_
  std::vector<tls::CertificateInfo> certificates_;      // under current_mutex_: current_'s
  bool stopping_ = false;                               // under reload_mutex_: no more discovery
  // While a pool discovers its backends; under reload_mutex_. Declared last, so destroyed first:
  // their threads call into the members above.
  std::vector<discovery::DnsName> dns_questions_;  // dns_'s
  std::vector<std::string> dns_servers_;           // dns_'s
  std::unique_ptr<discovery::Queue> discovered_;
  std::unique_ptr<discovery::FileWatch> files_;
  std::unique_ptr<discovery::DnsWatch> dns_;
  std::unique_ptr<UpgradeTakeover> takeover_;  // until this process serves
  std::vector<HandedSocket> copies_;           // under reload_mutex_
  std::atomic<pid_t> successor_{0};            // the process that took the sockets over
  std::atomic<bool> stopping_started_{false};  // drain_and_stop() began
  std::unique_ptr<UpgradeOffer> offer_;        // last: its thread calls into the members above
};

// Blocks the signals the control thread handles; call before any thread starts.
void block_control_signals();

}  // namespace usher::app
