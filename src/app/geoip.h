#pragma once
// The geoip database of a configuration, opened the way a generation needs it (start, reload,
// `usher check`).
#include <memory>

#include "base/expected.h"
#include "config/config.h"
#include "geo/database.h"

namespace usher::app {

// Null when the configuration has no geoip; a problem is reported at FILE:LINE:COL of its
// `database` key, with libmaxminddb's words for it.
Expected<std::shared_ptr<const geo::Database>> open_geoip(const config::Config& config);

}  // namespace usher::app
