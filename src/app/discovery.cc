// Discovery files: when one changes, the pools that read it take its new list as a new
// generation, built from the configuration being served (not the file on disk, which may hold
// edits nobody asked to apply yet). Backends that stay keep their state, leaving ones drain
// (requests under way finish on them), joining ones start as a reload starts them. A list that
// cannot be read changes nothing: the pool keeps its last good list, and the log says why.
#include <spdlog/spdlog.h>

#include "app/server.h"

namespace usher::app {

namespace {

bool same_backends(const std::vector<config::Backend>& a, const std::vector<config::Backend>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!(a[i].address == b[i].address) || a[i].weight != b[i].weight || a[i].name != b[i].name) {
      return false;
    }
  }
  return true;
}

// Whether the pool's list changed (then `pool.backends` holds the new one).
bool reread_list(config::Pool& pool) {
  config::Errors errors;
  auto backends = config::load_backend_list(pool.discovery_file, errors);
  if (!backends) {
    for (const std::string& problem : errors.messages) {
      spdlog::error("discovery: {}; pool '{}' keeps its {} backends", problem, pool.name,
                    pool.backends.size());
    }
    return false;
  }
  if (same_backends(*backends, pool.backends)) return false;
  spdlog::info("discovery: pool '{}' has {} backends (was {}) in {}", pool.name, backends->size(),
               pool.backends.size(), pool.discovery_file);
  pool.backends = std::move(*backends);
  return true;
}

}  // namespace

void Server::refresh_discovery() {
  std::lock_guard lock(reload_mutex_);
  if (stopping_ || !discovery_) return;
  config::Config next = generation()->config;
  bool changed = false;
  for (config::Pool& pool : next.pools) {
    if (!pool.discovery_file.empty() && reread_list(pool)) changed = true;
  }
  if (!changed) return;
  config::Errors errors;
  config::validate(next, errors);
  std::vector<std::string> problems = std::move(errors.messages);
  if (problems.empty()) problems = apply(std::move(next));
  if (problems.empty()) {
    spdlog::info("discovery: serving generation {}", generation()->number);
    return;
  }
  for (const std::string& problem : problems) {
    spdlog::error("discovery: {}; the pools keep their backends", problem);
  }
}

// Reload mutex held, or before any reload can run.
void Server::watch_discovery_files() {
  if (stopping_) return;
  std::vector<std::string> files;
  for (const config::Pool& pool : generation()->config.pools) {
    if (!pool.discovery_file.empty()) files.push_back(pool.discovery_file);
  }
  if (files.empty() && !discovery_) return;
  if (!discovery_)
    discovery_ = std::make_unique<discovery::FileWatch>([this] { refresh_discovery(); });
  if (std::string error = discovery_->watch(files); !error.empty()) {
    spdlog::error("discovery: {}; its files are read again only at a reload", error);
  }
}

// No refresh starts after this, and one under way has ended when it returns. The watch's thread
// is joined outside the reload lock: it may be waiting for that lock in refresh_discovery().
void Server::stop_discovery() {
  std::unique_ptr<discovery::FileWatch> watch;
  {
    std::lock_guard lock(reload_mutex_);
    stopping_ = true;
    watch = std::move(discovery_);
  }
}

}  // namespace usher::app
