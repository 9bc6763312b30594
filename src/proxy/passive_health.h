#pragma once
// Passive checks (health::Outlier): real traffic's outcomes on a backend, and its ejection
// after too many failures in a row. Any worker thread; shared by the HTTP and layer-4 paths.
#include <cstdint>

#include "proxy/pool_state.h"

namespace usher::proxy {

// One try's outcome on the pool's backend `index` (a connect failure, a reset or a 5xx response
// is a failure); logs an ejection when this outcome causes one.
void record_passive_outcome(PoolState& pool, uint32_t index, uint64_t now_ms, bool failed);

}  // namespace usher::proxy
