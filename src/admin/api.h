#pragma once
// The admin listener's endpoints, as complete HTTP responses (admin thread only).
//   GET  /                                    the dashboard (one self-contained page)
//   GET  /livez                               200 while the process runs
//   GET  /readyz                              200, or 503 once draining has begun
//   GET  /metrics                             Prometheus text format            [token]
//   GET  /api/v1/pools                        pools and backends as JSON        [token]
//   GET  /api/v1/series?since=MS              the dashboard's last five minutes [token]
//   POST /api/v1/pools/P/backends?address=A&weight=W&name=N   add a backend        [token]
//   POST /api/v1/pools/P/backends/B/ACTION    drain | enable | disable | remove (ready = enable)
//   POST /api/v1/pools/P/backends/B/weight?value=W                                 [token]
//   POST /api/v1/reload                       re-read the configuration file    [token]
// B is a backend's name or address. [token]: with `admin.token` set, these want
// "Authorization: Bearer TOKEN" and answer 401 without it.
#include <string>
#include <vector>

#include "admin/control.h"
#include "admin/sampler.h"
#include "codec/http1/message.h"
#include "log/access_log.h"
#include "metrics/registry.h"
#include "proxy/pool_state.h"

namespace usher::admin {

struct ApiContext {
  Control& control;
  const metrics::Registry& metrics;
  const log::AccessLog* access_log;
  Sampler& sampler;
  std::string token;
};

std::string respond(const ApiContext& context, const http1::RequestHead& request, bool draining);

}  // namespace usher::admin
