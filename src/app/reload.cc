// Reloading: re-read the file, refuse what cannot change while running, build the next
// generation, hand it to every worker and wait until all serve it.
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <thread>

#include "app/dns.h"
#include "app/geoip.h"
#include "app/server.h"
#include "app/service_notify.h"
#include "net/reactor.h"

namespace usher::app {

namespace {

bool datagram(const config::Listener& listener) {
  return listener.protocol == config::Protocol::kUdp;
}

// Whether `config` has a socket for `listener` already (the same address and kind).
bool serves(const config::Config& config, const config::Listener& listener) {
  for (const config::Listener& l : config.listeners) {
    if (l.listen == listener.listen && datagram(l) == datagram(listener)) return true;
  }
  return false;
}

void close_all(std::vector<std::vector<int>>& fds) {
  for (auto& worker : fds) {
    for (int& fd : worker) {
      if (fd >= 0) ::close(std::exchange(fd, -1));
    }
  }
}

}  // namespace

std::string Server::bind_new_listeners(const config::Config& next, const config::Config* serving,
                                       std::vector<std::vector<int>>& fds,
                                       std::vector<std::vector<std::pair<size_t, int>>>* more) {
  fds.assign(workers_.size(), std::vector<int>(next.listeners.size(), -1));
  if (more) more->assign(workers_.size(), {});
  for (size_t l = 0; l < next.listeners.size(); ++l) {
    const config::Listener& listener = next.listeners[l];
    if (serving && serves(*serving, listener)) continue;
    std::vector<int> inherited;
    // Only run()'s binding (the one given `more`) takes over: a reload never does.
    if (takeover_ && more) {
      inherited = takeover_->take(datagram(listener) ? "udp" : "tcp", listener.listen);
    }
    for (size_t i = workers_.size(); i < inherited.size() && more; ++i) {
      (*more)[i % workers_.size()].emplace_back(l, std::exchange(inherited[i], -1));
    }
    for (size_t w = 0; w < workers_.size(); ++w) {
      if (w < inherited.size()) {
        fds[w][l] = inherited[w];
        continue;
      }
      std::string error;
      fds[w][l] = proxy::bind_listener(listener.listen, datagram(listener), error);
      if (fds[w][l] < 0) {
        close_all(fds);
        return error;
      }
    }
  }
  return {};
}

// Keys that size or start what lives for the whole run. Changing them needs a restart; a reload
// that tries is refused with a message saying so, never applied in part.
std::vector<std::string> Server::restart_only_changes(const config::Config& next) const {
  std::vector<std::string> changed;
  auto refuse = [&](bool differs, const char* key) {
    if (differs) {
      changed.push_back(path_ + ": '" + key +
                        "' cannot change while usher runs (restart to apply it); nothing was "
                        "reloaded");
    }
  };
  const config::Config& f = first_;
  refuse(config::effective_workers(next) != config::effective_workers(f), "workers");
  refuse(next.io_backend != f.io_backend, "io_backend");
  refuse(
      next.admin.has_value() != f.admin.has_value() || (next.admin && !(*next.admin == *f.admin)),
      "admin.listen");
  refuse(next.admin_token != f.admin_token, "admin.token");
  refuse(next.upgrade_socket != f.upgrade_socket, "upgrade_socket");
  refuse(proxy::buffer_size_for(next.limits) > workers_.front()->buffer_size(),
         "limits.max_header_bytes (above the size the buffers were made for)");
  return changed;
}

std::string Server::serving_status() const {
  return fmt::format("serving generation {} ({} listeners, {} workers)", current_->number,
                     current_->config.listeners.size(), workers_.size());
}

std::vector<std::string> Server::reload() {
  std::lock_guard lock(reload_mutex_);
  notify_reloading();
  std::vector<std::string> problems;
  if (path_.empty()) {
    problems.push_back("no configuration file to reload: usher runs in quick mode");
  } else {
    config::Errors errors;
    auto loaded = config::load_file(path_, errors);
    if (loaded) resolve_dns_pools(*loaded, &generation()->config, errors);
    problems = std::move(errors.messages);
    if (loaded && problems.empty()) {
      // Opened again at every reload: a database replaced on disk is taken even where the
      // watch could not see it.
      auto geoip = open_geoip(*loaded);
      if (!geoip) {
        problems.push_back(geoip.error().message + "; nothing was reloaded");
      } else {
        problems = apply(std::move(*loaded), std::move(*geoip));
      }
    }
    if (problems.empty()) aim_discovery();
  }
  std::lock_guard counts(current_mutex_);
  if (problems.empty()) {
    ++counts_.success;
    spdlog::info("reload: serving generation {} from {}", current_->number, path_);
  } else {
    ++counts_.failure;
    for (const std::string& p : problems) spdlog::error("reload refused: {}", p);
  }
  // Refused or not, the process serves (the old configuration if refused): ready again.
  notify_ready(serving_status());
  return problems;
}

// Reload mutex held.
std::vector<std::string> Server::apply(config::Config next,
                                       std::shared_ptr<const geo::Database> geoip) {
  std::vector<std::string> problems = restart_only_changes(next);
  if (!problems.empty()) return problems;
  std::vector<tls::WorkerContexts> tls = build_tls(next, problems);
  if (!problems.empty()) {
    for (std::string& p : problems) p += "; nothing was reloaded";
    return problems;
  }
  const std::shared_ptr<const proxy::Generation> serving = generation();
  std::vector<std::vector<int>> fds;
  if (std::string error = bind_new_listeners(next, &serving->config, fds); !error.empty()) {
    return {path_ + ": " + error + "; nothing was reloaded"};
  }
  if (std::string error = access_log_->retarget(next.access_log); !error.empty()) {
    close_all(fds);
    return {path_ + ": " + error + "; nothing was reloaded"};
  }
  tracer_->retarget(next.tracing);
  // Health checks stop first, so that what the next generation takes over from this one (up or
  // down, ejected) is final.
  checker_->stop();
  keep_copies(next, fds, {});
  auto generation = proxy::build_generation(std::move(next), serving->number + 1, *metrics_,
                                            serving.get(), std::move(geoip));
  start_health_checks(*generation);
  std::vector<tls::CertificateInfo> certificates = tls::certificates(tls.front().listeners);
  serve(generation, std::move(fds), std::move(tls));
  cluster_->configure(generation->config);
  drop_copies_unlisted(generation->config);
  proxy::retire_removed_backends(*serving, *generation);
  std::lock_guard lock(current_mutex_);
  current_ = std::move(generation);
  certificates_ = std::move(certificates);
  return {};
}

// Hands the generation to every worker and waits until each serves it: a reload that returned
// is in force for every request that starts after it.
void Server::serve(const std::shared_ptr<const proxy::Generation>& next,
                   std::vector<std::vector<int>> fds, std::vector<tls::WorkerContexts> tls) {
  for (size_t i = 0; i < workers_.size(); ++i) {
    workers_[i]->offer(
        std::make_unique<proxy::WorkerGeneration>(next, std::move(fds[i]), std::move(tls[i])));
  }
  const uint64_t give_up = net::monotonic_ms() + 5000;  // a worker stuck this long is stopping
  for (auto& w : workers_) {
    while (w->generation_served() < next->number && net::monotonic_ms() < give_up) {
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
  }
}

std::vector<tls::WorkerContexts> Server::build_tls(const config::Config& config,
                                                   std::vector<std::string>& problems) const {
  std::vector<const tls::Library*> libraries;
  for (const auto& library : tls_libraries_) libraries.push_back(library.get());
  std::vector<tls::WorkerContexts> contexts = tls::build_contexts(config, libraries, problems);
  if (problems.empty()) {
    constexpr std::time_t kTwoWeeks = 14 * 86400;
    for (const std::string& warning :
         tls::expiry_warnings(contexts.front().listeners, std::time(nullptr), kTwoWeeks)) {
      spdlog::warn("{}", warning);
    }
  }
  return contexts;
}

void Server::start_health_checks(const proxy::Generation& generation) {
  std::vector<health::CheckTarget> targets;
  std::vector<cluster::SharedBackend> shares;
  for (const auto& pool : generation.pools) {
    if (!pool->config.health) continue;
    // The checker's thread has a context of its own, in the default library: the files were
    // loaded once already by build_tls, so this cannot fail but for a file changed since.
    std::shared_ptr<const tls::ClientContext> tls;
    if (pool->config.tls) {
      auto built = tls::ClientContext::build(pool->config, generation.config.source, nullptr);
      if (built) {
        tls = std::move(*built);
      } else {
        spdlog::error("health: {}", built.error().message);
      }
    }
    const bool share = generation.config.cluster.share_health;
    for (uint32_t i = 0; i < pool->capacity(); ++i) {
      std::shared_ptr<health::SharedHealth> shared;
      // Backends added at run time (admin API, discovery) may differ between instances: each
      // probes those on its own.
      if (share && pool->present(i)) {
        shared = std::make_shared<health::SharedHealth>();
        shares.push_back({pool->config.name + "/" + pool->slot(i).address.to_string(), shared});
      }
      targets.push_back({pool->config.name, &pool->slot(i).address, &*pool->config.health,
                         &pool->live, i, pool->config.panic_percent, tls, std::move(shared)});
    }
  }
  checker_ = std::make_unique<health::Checker>(targets);
  checker_->start();
  cluster_->share_health(std::move(shares));
}

}  // namespace usher::app
