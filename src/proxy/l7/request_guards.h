#pragma once
// A request's protection checks, after routing and before anything is sent: the listener's rate
// limit, then the route's allow/deny lists and rate limit. A refusal is usher's own response
// (403, or 429 with Retry-After and the RateLimit fields), written into the caller's buffer.
#include <cstddef>

#include "codec/http1/message.h"
#include "net/buffer_pool.h"
#include "net/task.h"
#include "proxy/l7/local_response.h"
#include "proxy/l7/session.h"

namespace usher::proxy::l7 {

struct GuardRefusal {
  int status = 0;    // 0: the request may go on
  size_t bytes = 0;  // of the response written into `out`; 0 with a status: it did not fit
  // A cluster-scoped rate limit waits for Redis's answer (Client::lease): nothing was
  // decided or spent; wait_for_lease, then prepare the request again.
  bool wait = false;
};

// `target`: the matched route, or null when none matched (only the listener's limit applies).
// `base` carries what every local response of this request shares (request id, Connection).
GuardRefusal check_guards(Client& c, const http1::RequestHead& head, const RequestInfo& info,
                          const RouteTarget* target, LocalResponse base, net::Buffer& out);

// Until the answer check_guards asked for came (or a second), without holding up the worker.
net::Task<void> wait_for_lease(Client& c);

}  // namespace usher::proxy::l7
