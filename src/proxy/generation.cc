#include "proxy/generation.h"

#include <unistd.h>

#include "proxy/worker.h"

namespace usher::proxy {

namespace {

std::string listener_label(const config::Listener& l) {
  return l.name.empty() ? l.listen.to_string() : l.name;
}

const PoolState* find_pool(const Generation* generation, const std::string& name) {
  if (!generation) return nullptr;
  for (const auto& pool : generation->pools) {
    if (pool->config.name == name) return pool.get();
  }
  return nullptr;
}

std::vector<PoolState*> pool_views(const Generation& generation) {
  std::vector<PoolState*> pools;
  for (const auto& p : generation.pools) pools.push_back(p.get());
  return pools;
}

}  // namespace

std::shared_ptr<const Generation> build_generation(config::Config config, uint64_t number,
                                                   metrics::Registry& registry,
                                                   const Generation* previous,
                                                   std::shared_ptr<const geo::Database> geoip) {
  auto generation = std::make_shared<Generation>();
  generation->number = number;
  generation->geoip = std::move(geoip);
  generation->config = std::move(config);
  const config::Config& c = generation->config;
  for (const config::Pool& pool : c.pools) {
    generation->pools.push_back(
        std::make_unique<PoolState>(pool, registry, find_pool(previous, pool.name)));
  }
  for (const config::Listener& listener : c.listeners) {
    const std::string label = listener_label(listener);
    generation->listener_labels.push_back(label);
    generation->listener_ids.push_back(registry.listener_id(label));
    std::vector<uint32_t>& routes = generation->route_ids.emplace_back();
    for (const config::Route& route : listener.routes) {
      routes.push_back(registry.route_id(label, route.name));
    }
  }
  generation->guards = build_guards(c, previous ? &previous->guards : nullptr,
                                    previous ? &previous->config : nullptr);
  return generation;
}

void retire_removed_backends(const Generation& previous, const Generation& next) {
  for (const auto& old_pool : previous.pools) {
    const PoolState* kept = find_pool(&next, old_pool->config.name);
    old_pool->for_each_member([&](uint32_t slot) {
      const std::string address = old_pool->slot(slot).address.to_string();
      if (!kept || kept->find(address) == balance::kNoBackend) old_pool->retire(slot);
    });
  }
}

metrics::Registry::Layout Generation::metrics_layout() const {
  metrics::Registry::Layout layout;
  for (size_t l = 0; l < config.listeners.size(); ++l) {
    layout.listeners.push_back({listener_ids[l], listener_labels[l]});
    if (config.listeners[l].protocol == config::Protocol::kTcp) {
      layout.tcp_listeners.push_back(layout.listeners.back());
    } else if (config.listeners[l].protocol == config::Protocol::kUdp) {
      layout.udp_listeners.push_back(layout.listeners.back());
    }
    for (size_t r = 0; r < config.listeners[l].routes.size(); ++r) {
      layout.routes.push_back(
          {route_ids[l][r], listener_labels[l], config.listeners[l].routes[r].name});
    }
  }
  for (const auto& pool : pools) {
    layout.pools.push_back({pool->id, pool->config.name});
    pool->for_each_member([&](uint32_t i) {
      layout.backends.push_back(
          {pool->backend_id(i), pool->config.name, pool->slot(i).name, pool->slot(i).zone});
    });
  }
  return layout;
}

WorkerGeneration::WorkerGeneration(std::shared_ptr<const Generation> generation,
                                   std::vector<int> fds, tls::WorkerContexts contexts)
    : shared(std::move(generation)),
      listen_fds(std::move(fds)),
      tls(std::move(contexts.listeners)),
      pool_tls(std::move(contexts.pools)) {
  const std::vector<PoolState*> pools = pool_views(*shared);
  listeners.reserve(shared->config.listeners.size());
  for (size_t i = 0; i < shared->config.listeners.size(); ++i) {
    listeners.emplace_back(shared->config.listeners[i], pools, shared->listener_ids[i],
                           shared->route_ids[i], shared->guards.listeners[i],
                           shared->guards.routes[i]);
  }
}

WorkerGeneration::~WorkerGeneration() {
  for (int fd : listen_fds) {
    if (fd >= 0) ::close(fd);
  }
  for (const auto& [listener, fd] : more_fds) ::close(fd);
}

GenerationRef::GenerationRef(Worker& worker, WorkerGeneration& generation)
    : worker_(&worker), generation_(&generation) {
  ++generation.users;
}

GenerationRef& GenerationRef::operator=(GenerationRef&& other) noexcept {
  if (this != &other) {
    reset();
    worker_ = other.worker_;
    generation_ = std::exchange(other.generation_, nullptr);
  }
  return *this;
}

void GenerationRef::reset() {
  if (!generation_) return;
  if (--generation_->users == 0) worker_->release(generation_);
  generation_ = nullptr;
}

}  // namespace usher::proxy
