#pragma once
// One request's exchange with its pool: pick a backend, forward, relay the answer, and retry on
// the next candidate when that is safe and the pool's retry budget allows. Worker thread only.
#include "net/buffer_pool.h"
#include "net/task.h"
#include "proxy/l7/client_io.h"
#include "proxy/l7/session.h"
#include "proxy/pool_state.h"

namespace usher::proxy::l7 {

net::Task<Next> exchange(Client& c, PoolState& pool, const RequestInfo& info,
                         net::Buffer& request_head);

}  // namespace usher::proxy::l7
