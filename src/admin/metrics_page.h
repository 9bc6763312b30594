#pragma once
// GET /metrics: the registry's counters and histograms plus the gauges read from the pools'
// live state, in Prometheus text format.
#include <string>
#include <vector>

#include "log/access_log.h"
#include "metrics/registry.h"
#include "proxy/pool_state.h"

namespace usher::admin {

std::string metrics_page(const metrics::Registry& registry,
                         const std::vector<proxy::PoolState*>& pools,
                         const log::AccessLog* access_log);

}  // namespace usher::admin
