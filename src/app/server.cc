#include "app/server.h"

#include <signal.h>
#include <spdlog/spdlog.h>

#include <cstdlib>
#include <ctime>

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

}  // namespace

void block_control_signals() {
  sigset_t set = control_signals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);
}

Server::Server(config::Config config) : config_(std::move(config)) {
  uint32_t backend_count = 0;
  for (const config::Pool& pool : config_.pools) {
    const auto id = static_cast<uint32_t>(pools_.size());
    pools_.push_back(std::make_unique<proxy::PoolState>(pool, id, backend_count));
    backend_count += pools_.back()->capacity();
  }
  const std::vector<proxy::PoolState*> pools = pool_views();
  unsigned workers = config::effective_workers(config_);
  metrics_ = std::make_unique<metrics::Registry>(config_, workers, backend_count);
  if (config_.access_log.target != config::AccessLog::Target::kOff) {
    access_log_ = std::make_unique<log::AccessLog>(config_.access_log, workers);
  }
  std::vector<std::unique_ptr<net::Reactor>> reactors = make_reactors(workers);
  if (reactors.empty()) return;  // run() reports reactor_error_
  for (unsigned i = 0; i < workers; ++i) {
    workers_.push_back(std::make_unique<proxy::Worker>(
        config_, pools, backend_count, metrics_->shard(i),
        access_log_ ? &access_log_->channel(i) : nullptr, std::move(reactors[i])));
  }
}

// One backend for every worker, probed once: `auto` takes io_uring unless the kernel (or a
// container's seccomp profile) refuses it, and says why it fell back.
std::vector<std::unique_ptr<net::Reactor>> Server::make_reactors(unsigned count) {
  std::vector<std::unique_ptr<net::Reactor>> reactors;
  net::IoBackend backend = net::IoBackend::kEpoll;
  if (config_.io_backend != config::IoBackend::kEpoll) {
    std::string why;
    std::unique_ptr<net::Reactor> probe = net::make_uring_reactor(why);
    if (probe) {
      backend = net::IoBackend::kIoUring;
      reactors.push_back(std::move(probe));
    } else if (config_.io_backend == config::IoBackend::kIoUring) {
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
  for (auto& w : workers_) w->stop();
  for (auto& w : workers_) w->join();
}

int Server::run() {
  if (!reactor_error_.empty()) {
    spdlog::error("{}", reactor_error_);
    return 1;
  }
  spdlog::info("io backend: {}{}", workers_.front()->reactor().name(), io_backend_note_);
  // The admin listener first: once the traffic port accepts, /readyz and the API answer too.
  if (config_.admin) {
    admin_ = std::make_unique<admin::AdminServer>(*config_.admin, pool_views(), *metrics_,
                                                  access_log_.get(), config_.admin_token);
    if (std::string error = admin_->bind(); !error.empty()) {
      spdlog::error("{}", error);
      return 1;
    }
    admin_->start();
    spdlog::info("admin API on {}", config_.admin->to_string());
  }
  for (auto& w : workers_) {
    std::string error = w->bind_listeners();
    if (!error.empty()) {
      spdlog::error("{}", error);
      return 1;
    }
  }
  std::vector<health::CheckTarget> targets;
  for (auto& pool : pools_) {
    if (!pool->config.health) continue;
    for (uint32_t i = 0; i < pool->capacity(); ++i) {
      targets.push_back({pool->config.name, &pool->slot(i).address, &*pool->config.health,
                         &pool->live, i, pool->config.panic_percent});
    }
  }
  checker_ = std::make_unique<health::Checker>(targets);
  if (access_log_) access_log_->start();
  checker_->start();
  for (auto& w : workers_) w->start();
  for (const config::Listener& l : config_.listeners) {
    const config::Route& last = l.routes.back();
    if (l.routes.size() == 1 && last.action == config::Route::Action::kPool) {
      spdlog::info("listening on {} -> pool '{}' ({} workers)", l.listen.to_string(),
                   config_.pools[last.pool].name, workers_.size());
    } else {
      spdlog::info("listening on {} -> {} routes ({} workers)", l.listen.to_string(),
                   l.routes.size(), workers_.size());
    }
  }
  while (true) {
    int sig = wait_signal(-1);
    if (sig == SIGTERM || sig == SIGINT) break;
    if (sig == SIGHUP) spdlog::warn("SIGHUP: live reload is not available yet; restart to apply");
    if (sig == SIGUSR1 && access_log_) {
      spdlog::info("SIGUSR1: reopening the access log");
      access_log_->reopen();
    }
  }
  spdlog::info("draining: no new connections; in-flight requests have {} ms",
               config_.timeouts.drain.count());
  if (admin_) admin_->set_draining();
  for (auto& w : workers_) w->begin_drain();
  const uint64_t started = net::monotonic_ms();
  while (!drained(started)) {
    int sig = wait_signal(50);
    if (sig == SIGTERM || sig == SIGINT) {
      spdlog::warn("second stop signal: exiting now");
      break;
    }
  }
  bool abandoned = !all_sessions_ended();
  for (auto& w : workers_) w->stop();
  for (auto& w : workers_) w->join();
  checker_->stop();
  if (admin_) admin_->stop();
  if (access_log_) access_log_->stop();
  spdlog::info("stopped");
  if (abandoned) {
    // Connections still open are abandoned to the kernel, which closes them; their coroutine
    // frames are never resumed, so skip the teardown that would walk them.
    spdlog::shutdown();
    std::_Exit(0);
  }
  return 0;
}

std::vector<proxy::PoolState*> Server::pool_views() const {
  std::vector<proxy::PoolState*> pools;
  for (const auto& p : pools_) pools.push_back(p.get());
  return pools;
}

bool Server::all_sessions_ended() const {
  for (const auto& w : workers_) {
    if (w->session_count() != 0) return false;
  }
  return true;
}

bool Server::drained(uint64_t started_ms) const {
  if (net::monotonic_ms() - started_ms >= static_cast<uint64_t>(config_.timeouts.drain.count())) {
    spdlog::warn("drain timeout reached with connections still open");
    return true;
  }
  return all_sessions_ended();
}

}  // namespace usher::app
