#pragma once
// GET /metrics: the registry's counters and histograms plus the gauges read from the pools'
// live state and the reload counters, in Prometheus text format.
#include <string>

#include "admin/control.h"
#include "log/access_log.h"
#include "metrics/registry.h"
#include "proxy/generation.h"

namespace usher::admin {

std::string metrics_page(const metrics::Registry& registry, const proxy::Generation& generation,
                         const Control& control, const log::AccessLog* access_log);

}  // namespace usher::admin
