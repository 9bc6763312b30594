#include "proxy/l4/udp.h"

#include "proxy/worker.h"

namespace usher::proxy::l4 {
net::Task<void> serve_udp(Worker&, Endpoint&) {
  co_return;
}
}  // namespace usher::proxy::l4
