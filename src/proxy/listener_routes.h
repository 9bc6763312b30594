#pragma once
// One listener's routing as a worker sees it: the compiled table (the worker's own copy) and,
// per route, where its requests go.
#include <string>
#include <vector>

#include "config/config.h"
#include "proxy/pool_state.h"
#include "route/table.h"

namespace usher::proxy {

struct RouteTarget {
  const config::Route* config;
  PoolState* pool;  // null for redirect and respond routes
};

struct ListenerRoutes {
  ListenerRoutes(const config::Listener& listener, const std::vector<PoolState*>& pools,
                 size_t first_route);

  const config::Listener& config;
  route::Table table;
  std::vector<RouteTarget> targets;  // by route index
  std::string port;                  // the listen port as text, for X-Forwarded-Port
  size_t first_route;                // process-wide number of route 0, for metrics
};

}  // namespace usher::proxy
