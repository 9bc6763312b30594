#include "proxy/listener_routes.h"

namespace usher::proxy {

ListenerRoutes::ListenerRoutes(const config::Listener& listener,
                               const std::vector<PoolState*>& pools, size_t first)
    : config(listener),
      table(listener.routes),
      port(std::to_string(listener.listen.port())),
      first_route(first) {
  for (const config::Route& route : listener.routes) {
    targets.push_back(
        {&route, route.action == config::Route::Action::kPool ? pools[route.pool] : nullptr});
  }
}

}  // namespace usher::proxy
