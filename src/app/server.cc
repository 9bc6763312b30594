#include "app/server.h"

#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>

#include <algorithm>
#include <cstdlib>
#include <ctime>

#include "app/geoip.h"
#include "app/service_notify.h"
#include "net/reactor.h"

namespace usher::app {

namespace {

sigset_t control_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  sigaddset(&set, SIGUSR1);
  return set;
}

// Waits up to timeout_ms for a control signal; 0 when none came.
int wait_signal(int timeout_ms) {
  sigset_t set = control_signals();
  timespec ts{timeout_ms / 1000, static_cast<long>(timeout_ms % 1000) * 1'000'000};
  int sig = timeout_ms < 0 ? sigwaitinfo(&set, nullptr) : sigtimedwait(&set, nullptr, &ts);
  return sig > 0 ? sig : 0;
}

void log_listeners(const config::Config& config, size_t workers) {
  for (const config::Listener& l : config.listeners) {
    const config::Route& last = l.routes.back();
    if (l.routes.size() == 1 && last.action == config::Route::Action::kPool) {
      spdlog::info("listening on {} -> pool '{}' ({} workers)", l.listen.to_string(),
                   config.pools[last.pool].name, workers);
    } else {
      spdlog::info("listening on {} -> {} routes ({} workers)", l.listen.to_string(),
                   l.routes.size(), workers);
    }
  }
}

// Every connection costs a descriptor, and the usual soft limit (1024) is far below what a proxy
// holds; the hard limit is what an operator allows. Running out anyway is logged and counted by
// the accept loops.
void raise_descriptor_limit() {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) return;
  const rlim_t was = limit.rlim_cur;
  if (limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    if (::setrlimit(RLIMIT_NOFILE, &limit) != 0) limit.rlim_cur = was;
  }
  if (limit.rlim_cur == was) {
    spdlog::info("descriptor limit: {}", limit.rlim_cur);
  } else {
    spdlog::info("descriptor limit: {} (raised from {})", limit.rlim_cur, was);
  }
}

// How long the drain's end waits for the WebSocket tunnels it closes: each has
// l7::TunnelControl::kTunnelCloseMs from when its worker asks, and the workers ask at once.
constexpr uint64_t kEndTunnelsMs = 1500;

// The drain's end: every WebSocket tunnel still open is closed with a Close frame, and their
// connections get a bounded while to go (a second stop signal cuts it short).
void end_websockets(const std::vector<std::unique_ptr<proxy::Worker>>& workers) {
  spdlog::info("closing the WebSocket tunnels still open (Close 1001, Going Away)");
  for (const auto& w : workers) w->end_tunnels();
  const uint64_t started = net::monotonic_ms();
  while (net::monotonic_ms() - started < kEndTunnelsMs) {
    if (std::all_of(workers.begin(), workers.end(),
                    [](const auto& w) { return w->tunnels_ended(); })) {
      return;
    }
    const int sig = wait_signal(10);
    if (sig == SIGTERM || sig == SIGINT) return;
  }
  spdlog::warn("WebSocket tunnels still closing after {} ms: abandoned", kEndTunnelsMs);
}

}  // namespace

void block_control_signals() {
  sigset_t set = control_signals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);
}

Server::Server(config::Config config, std::string path,
               std::optional<config::IoBackend> forced_backend)
    : path_(std::move(path)), first_(config) {
  unsigned workers = config::effective_workers(config);
  metrics_ = std::make_unique<metrics::Registry>(workers);
  access_log_ = std::make_unique<log::AccessLog>(first_.access_log, workers);
  tracer_ = std::make_unique<trace::Exporter>(first_.tracing, workers);
  std::vector<std::unique_ptr<net::Reactor>> reactors =
      make_reactors(workers, forced_backend.value_or(config.io_backend));
  if (reactors.empty()) return;  // run() reports reactor_error_
  for (unsigned i = 0; i < workers; ++i) {
    tls_libraries_.push_back(std::make_unique<tls::Library>());
    workers_.push_back(std::make_unique<proxy::Worker>(first_.limits, metrics_->shard(i),
                                                       access_log_->channel(i), tracer_->channel(i),
                                                       std::move(reactors[i])));
  }
  cluster_ = std::make_unique<cluster::Service>();
  for (auto& w : workers_) w->set_cluster_port(cluster_->add_worker(w->reactor()));
  cluster_->configure(config);
  auto geoip = open_geoip(config);
  if (!geoip) geoip_error_ = geoip.error().message;
  current_ = proxy::build_generation(std::move(config), 1, *metrics_, nullptr,
                                     geoip ? std::move(*geoip) : nullptr);
}

// One backend for every worker, probed once: `auto` takes io_uring unless the kernel (or a
// container's seccomp profile) refuses it, and says why it fell back.
std::vector<std::unique_ptr<net::Reactor>> Server::make_reactors(unsigned count,
                                                                 config::IoBackend wanted) {
  std::vector<std::unique_ptr<net::Reactor>> reactors;
  net::IoBackend backend = net::IoBackend::kEpoll;
  if (wanted != config::IoBackend::kEpoll) {
    std::string why;
    std::unique_ptr<net::Reactor> probe = net::make_uring_reactor(why);
    if (probe) {
      backend = net::IoBackend::kIoUring;
      reactors.push_back(std::move(probe));
    } else if (wanted == config::IoBackend::kIoUring) {
      reactor_error_ = "io_backend io_uring is not available here: " + why;
      return {};
    } else {
      io_backend_note_ = " (io_uring unavailable: " + why + ")";
    }
  }
  while (reactors.size() < count) {
    std::string why;
    std::unique_ptr<net::Reactor> reactor = net::make_reactor(backend, why);
    if (!reactor) {
      reactor_error_ = "cannot create an event loop: " + why;
      return {};
    }
    reactors.push_back(std::move(reactor));
  }
  return reactors;
}

Server::~Server() {
  stop_discovery();
  for (auto& w : workers_) w->stop();
  for (auto& w : workers_) w->join();
  if (cluster_) cluster_->stop();
}

std::shared_ptr<const proxy::Generation> Server::generation() const {
  std::lock_guard lock(current_mutex_);
  return current_;
}

std::vector<tls::CertificateInfo> Server::certificates() const {
  std::lock_guard lock(current_mutex_);
  return certificates_;
}

Server::TraceCounts Server::trace_counts() const {
  return {tracer_->exported(), tracer_->dropped(), tracer_->failures()};
}

Server::ClusterCounts Server::cluster_counts() const {
  return {.configured = cluster_->redis_configured(),
          .redis_up = cluster_->redis_up(),
          .round_trips = cluster_->redis_round_trips(),
          .leases_granted = cluster_->leases_granted(),
          .leases_refused = cluster_->leases_refused()};
}

// Fit to hold a floating address: serving, not stopping, and every pool with a healthy backend.
// Nothing to say once a successor (binary upgrade) serves: the health file is its to write.
std::optional<bool> Server::fit() const {
  if (successor_.load() != 0) return std::nullopt;
  if (stopping_started_.load()) return false;
  const std::shared_ptr<const proxy::Generation> serving = generation();
  for (const auto& pool : serving->pools) {
    bool healthy = false;
    pool->for_each_member([&](uint32_t i) {
      healthy = healthy || pool->live[i].healthy.load(std::memory_order_relaxed);
    });
    if (!healthy) return false;
  }
  return true;
}

Server::ReloadCounts Server::reload_counts() const {
  std::lock_guard lock(current_mutex_);
  return counts_;
}

int Server::run() {
  for (const std::string* error : {&reactor_error_, &geoip_error_}) {
    if (error->empty()) continue;
    spdlog::error("{}", *error);
    return 1;
  }
  spdlog::info("io backend: {}{}", workers_.front()->reactor().name(), io_backend_note_);
  raise_descriptor_limit();
  // A successor listens on the path only once its predecessor has let go of it.
  if (!takeover_ && !offer_upgrade()) return 1;
  // The admin listener first: once the traffic port accepts, /readyz and the API answer too.
  if (first_.admin && !start_admin()) return 1;
  std::vector<std::string> problems;
  std::vector<tls::WorkerContexts> tls = build_tls(current_->config, problems);
  for (const std::string& p : problems) spdlog::error("{}", p);
  if (!problems.empty()) return 1;
  {
    std::lock_guard lock(current_mutex_);
    certificates_ = tls::certificates(tls.front().listeners);
  }
  std::vector<std::vector<int>> fds;
  std::vector<std::vector<std::pair<size_t, int>>> more;
  if (std::string error = bind_new_listeners(current_->config, nullptr, fds, &more);
      !error.empty()) {
    spdlog::error("{}", error);
    return 1;
  }
  keep_first_copies(fds, more);
  for (size_t i = 0; i < workers_.size(); ++i) {
    auto generation =
        std::make_unique<proxy::WorkerGeneration>(current_, std::move(fds[i]), std::move(tls[i]));
    generation->more_fds = std::move(more[i]);
    workers_[i]->offer(std::move(generation));
  }
  start_health_checks(*current_);
  access_log_->start();
  tracer_->start();
  for (auto& w : workers_) w->start();
  cluster_->set_fitness([this] { return fit(); });
  cluster_->start();
  log_listeners(current_->config, workers_.size());
  if (takeover_) {
    if (!finish_takeover()) {  // two processes would serve for good: this one stops
      drain_and_stop();
      return 1;
    }
    offer_upgrade();  // a failure is logged: this process serves, but cannot be upgraded
  }
  {
    std::lock_guard lock(reload_mutex_);
    aim_discovery();
    // A list replaced between its first reading and the watch.
    if (files_) discovered_->files_changed();
  }
  std::string status;
  {
    std::lock_guard lock(current_mutex_);  // the admin API or a discovery file may reload already
    status = serving_status();
  }
  notify_ready(status);
  while (true) {
    int sig = wait_signal(-1);
    if (sig == SIGTERM || sig == SIGINT) break;
    if (sig == SIGHUP) {
      spdlog::info("SIGHUP: reloading {}", path_.empty() ? "(no file in quick mode)" : path_);
      reload();
    }
    if (sig == SIGUSR1) {
      spdlog::info("SIGUSR1: reopening the access log");
      access_log_->reopen();
    }
  }
  return drain_and_stop();
}

bool Server::start_admin() {
  admin_ = std::make_unique<admin::AdminServer>(*first_.admin, *this, *metrics_, access_log_.get(),
                                                first_.admin_token);
  std::vector<int> inherited;
  if (takeover_) inherited = takeover_->take("admin", *first_.admin);
  for (size_t i = 1; i < inherited.size(); ++i) ::close(inherited[i]);
  if (std::string error = admin_->bind(inherited.empty() ? -1 : inherited.front());
      !error.empty()) {
    spdlog::error("{}", error);
    return false;
  }
  admin_->start();
  spdlog::info("admin API on {}", first_.admin->to_string());
  return true;
}

int Server::drain_and_stop() {
  stopping_started_.store(true);
  notify_stopping();
  stop_discovery();
  offer_.reset();  // a stopping process hands nothing over
  {
    std::lock_guard lock(reload_mutex_);
    for (const HandedSocket& s : std::exchange(copies_, {})) ::close(s.fd);
  }
  const Millis drain = generation()->config.timeouts.drain;
  if (const pid_t successor = successor_.load(); successor != 0) {
    spdlog::info("upgrade: pid {} serves on the listening sockets now", successor);
    if (admin_) admin_->stop();  // the successor answers on the admin socket
  }
  spdlog::info("draining: no new connections; in-flight requests have {} ms", drain.count());
  if (admin_) admin_->set_draining();
  for (auto& w : workers_) w->begin_drain();
  const uint64_t started = net::monotonic_ms();
  bool second_signal = false;
  while (!drained(started)) {
    int sig = wait_signal(50);
    if (sig == SIGTERM || sig == SIGINT) {
      spdlog::warn("second stop signal: exiting now");
      second_signal = true;
      break;
    }
  }
  if (!second_signal && !all_sessions_ended()) end_websockets(workers_);
  bool abandoned = !all_sessions_ended();
  for (auto& w : workers_) w->stop();
  for (auto& w : workers_) w->join();
  cluster_->stop();
  {
    std::lock_guard lock(reload_mutex_);  // an API reload under way ends first
    checker_->stop();
  }
  if (admin_) admin_->stop();
  access_log_->stop();
  tracer_->stop();
  spdlog::info("stopped");
  if (abandoned) {
    // Connections still open are abandoned to the kernel, which closes them; their coroutine
    // frames are never resumed, so skip the teardown that would walk them.
    spdlog::shutdown();
    std::_Exit(0);
  }
  return 0;
}

bool Server::all_sessions_ended() const {
  for (const auto& w : workers_) {
    if (w->session_count() != 0 || w->accept_loops() != 0) return false;
  }
  return true;
}

bool Server::drained(uint64_t started_ms) const {
  const auto drain = static_cast<uint64_t>(generation()->config.timeouts.drain.count());
  if (net::monotonic_ms() - started_ms >= drain) {
    spdlog::warn("drain timeout reached with connections still open");
    return true;
  }
  return all_sessions_ended();
}

}  // namespace usher::app
