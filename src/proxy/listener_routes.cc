#include "proxy/listener_routes.h"

namespace usher::proxy {

ListenerRoutes::ListenerRoutes(const config::Listener& listener,
                               const std::vector<PoolState*>& pools, uint32_t listener_id,
                               const std::vector<uint32_t>& route_ids,
                               const ListenerGuard& listener_guard,
                               const std::vector<RouteGuard>& route_guards)
    : config(listener),
      guard(listener_guard),
      table(listener.routes),
      port(std::to_string(listener.listen.port())),
      metric_id(listener_id) {
  for (size_t i = 0; i < listener.routes.size(); ++i) {
    const config::Route& route = listener.routes[i];
    targets.push_back({&route,
                       route.action == config::Route::Action::kPool ? pools[route.pool] : nullptr,
                       route_ids[i], route_guards[i].empty() ? nullptr : &route_guards[i]});
  }
}

}  // namespace usher::proxy
