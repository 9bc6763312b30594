// Discovery: pools whose backends come from a file of their own or from a DNS name. The watches
// (FileWatch, DnsWatch) only queue what they find; the queue's thread applies it here, as a new
// generation built from the configuration being served (not the file on disk, which may hold
// edits nobody asked to apply yet), through the reload machinery: backends that stay keep their
// state, leaving ones drain, joining ones ramp over slow_start. A list that cannot be read and a
// name that gets no usable answer change nothing: the pool keeps its last good backends, and the
// log says why.
#include <spdlog/spdlog.h>

#include <chrono>

#include "app/dns.h"
#include "app/geoip.h"
#include "app/server.h"

namespace usher::app {

namespace {

bool same_backends(const std::vector<config::Backend>& a, const std::vector<config::Backend>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!(a[i].address == b[i].address) || a[i].weight != b[i].weight || a[i].name != b[i].name ||
        a[i].zone != b[i].zone || a[i].region != b[i].region) {
      return false;
    }
  }
  return true;
}

// Whether the pool's backends change (then `pool.backends` holds the new ones).
bool take(config::Pool& pool, std::vector<config::Backend> backends, std::string_view from) {
  if (same_backends(backends, pool.backends)) return false;
  spdlog::info("discovery: pool '{}' has {} backends (was {}) from {}", pool.name, backends.size(),
               pool.backends.size(), from);
  pool.backends = std::move(backends);
  return true;
}

}  // namespace

void Server::count_discovery_failure(const std::string& pool) {
  std::lock_guard lock(current_mutex_);
  ++discovery_failures_[pool];
}

std::vector<std::pair<std::string, uint64_t>> Server::discovery_failures() const {
  std::lock_guard lock(current_mutex_);
  return {discovery_failures_.begin(), discovery_failures_.end()};
}

bool Server::reread_list(config::Pool& pool) {
  config::Errors errors;
  auto backends = config::load_backend_list(pool.discovery_file, errors);
  if (!backends) {
    count_discovery_failure(pool.name);
    for (const std::string& problem : errors.messages) {
      spdlog::error("discovery: {}; pool '{}' keeps its {} backends", problem, pool.name,
                    pool.backends.size());
    }
    return false;
  }
  return take(pool, std::move(*backends), pool.discovery_file);
}

std::shared_ptr<const geo::Database> Server::current_geoip(bool& changed) const {
  const std::shared_ptr<const proxy::Generation> serving = generation();
  const std::shared_ptr<const geo::Database>& database = serving->geoip;
  if (!database || geo::stamp_of(database->path()) == database->stamp()) return database;
  auto next = open_geoip(serving->config);
  if (!next) {
    spdlog::error("geoip: {}; the old database stays in use", next.error().message);
    return database;
  }
  spdlog::info("geoip: {} changed on disk; a new generation uses it", database->path());
  changed = true;
  return std::move(*next);
}

void Server::apply_discovered(discovery::Queue::Batch batch) {
  std::lock_guard lock(reload_mutex_);
  if (stopping_) return;
  config::Config next = generation()->config;
  bool changed = false;
  std::shared_ptr<const geo::Database> geoip =
      batch.files ? current_geoip(changed) : generation()->geoip;
  for (config::Pool& pool : next.pools) {
    if (batch.files && !pool.discovery_file.empty() && reread_list(pool)) changed = true;
    auto answer = batch.answers.find(pool.name);
    if (pool.dns && answer != batch.answers.end() &&
        take(pool, std::move(answer->second), "dns " + pool.dns->name)) {
      changed = true;
    }
  }
  if (!changed) return;
  config::Errors errors;
  config::validate(next, errors);
  std::vector<std::string> problems = std::move(errors.messages);
  if (problems.empty()) problems = apply(std::move(next), std::move(geoip));
  if (problems.empty()) {
    spdlog::info("discovery: serving generation {}", generation()->number);
    return;
  }
  for (const std::string& problem : problems) {
    spdlog::error("discovery: {}; the pools keep their backends", problem);
  }
}

// Reload mutex held, or before any reload can run.
void Server::aim_discovery() {
  if (stopping_) return;
  const config::Config& config = generation()->config;
  std::vector<std::string> files;
  std::vector<std::string> dns_pools;
  for (const config::Pool& pool : config.pools) {
    if (!pool.discovery_file.empty()) files.push_back(pool.discovery_file);
    if (pool.dns) dns_pools.push_back(pool.name);
  }
  // The geoip database is replaced on disk like a list (geoipupdate renames a new file into
  // place): the same watch sees it, and apply_discovered() opens it again.
  if (config.geoip) files.push_back(config.geoip->database);
  if (files.empty() && dns_pools.empty() && !discovered_) return;
  if (!discovered_) {
    discovered_ = std::make_unique<discovery::Queue>(
        [this](discovery::Queue::Batch batch) { apply_discovered(std::move(batch)); });
  }
  if (!files_ && !files.empty()) {
    files_ = std::make_unique<discovery::FileWatch>([this] { discovered_->files_changed(); });
  }
  if (files_) {
    if (std::string error = files_->watch(files); !error.empty()) {
      spdlog::error("discovery: {}; its files are read again only at a reload", error);
    }
  }
  aim_dns(config, std::move(dns_pools));
}

namespace {

struct Logged {
  std::string why;
  std::chrono::steady_clock::time_point at;
};

}  // namespace

// A new DnsWatch when the questions changed (its thread only queues, so joining the old one
// under the reload lock is safe).
void Server::aim_dns(const config::Config& config, std::vector<std::string> pools) {
  std::vector<discovery::DnsName> questions = dns_questions(config);
  const discovery::DnsOptions options = dns_options(config);
  if (dns_ && questions == dns_questions_ && options.servers == dns_servers_) return;
  dns_.reset();
  dns_questions_ = questions;
  dns_servers_ = options.servers;
  if (questions.empty()) return;
  discovery::Queue& queue = *discovered_;
  auto names = std::make_shared<std::vector<std::string>>(std::move(pools));
  dns_ = std::make_unique<discovery::DnsWatch>(
      std::move(questions), options,
      [&queue, names](size_t i, std::vector<discovery::Found> found) {
        queue.answered((*names)[i], dns_backends(found));
      },
      [this, names, logged = std::vector<Logged>(names->size())](size_t i,
                                                                 const std::string& why) mutable {
        count_discovery_failure((*names)[i]);
        // A resolver that stays down is said again every 10 s, not at every retry.
        const auto now = std::chrono::steady_clock::now();
        if (why == logged[i].why && now - logged[i].at < std::chrono::seconds(10)) return;
        logged[i] = {why, now};
        spdlog::error("discovery: dns for pool '{}': {}; the pool keeps its backends", (*names)[i],
                      why);
      });
  if (std::string error = dns_->start(); !error.empty()) {
    spdlog::error("discovery: {}; DNS names are asked again only at a reload", error);
    dns_.reset();
  }
}

// Nothing is applied after this returns. The queue's thread is joined outside the reload lock:
// it may be waiting for that lock in apply_discovered().
void Server::stop_discovery() {
  std::unique_ptr<discovery::Queue> queue;
  std::unique_ptr<discovery::FileWatch> files;
  std::unique_ptr<discovery::DnsWatch> dns;
  {
    std::lock_guard lock(reload_mutex_);
    stopping_ = true;
    queue = std::move(discovered_);
    files = std::move(files_);
    dns = std::move(dns_);
  }
}

}  // namespace usher::app
