#pragma once
// One listener's routing as a worker sees it: the compiled table (the worker's own copy) and,
// per route, where its requests go.
#include <cstdint>
#include <string>
#include <vector>

#include "config/config.h"
#include "proxy/guards.h"
#include "proxy/pool_state.h"
#include "route/table.h"

namespace usher::proxy {

struct RouteTarget {
  const config::Route* config;
  PoolState* pool;          // null for redirect and respond routes
  uint32_t metric_id;       // the route's counters
  const RouteGuard* guard;  // null: nothing to check
};

struct ListenerRoutes {
  ListenerRoutes(const config::Listener& listener, const std::vector<PoolState*>& pools,
                 uint32_t metric_id, const std::vector<uint32_t>& route_ids,
                 const ListenerGuard& guard, const std::vector<RouteGuard>& route_guards);

  const config::Listener& config;
  const ListenerGuard& guard;
  route::Table table;
  std::vector<RouteTarget> targets;  // by route index
  std::string port;                  // the listen port as text, for X-Forwarded-Port
  uint32_t metric_id;                // the listener's counters
};

}  // namespace usher::proxy
