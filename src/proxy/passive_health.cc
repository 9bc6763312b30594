#include "proxy/passive_health.h"

#include <spdlog/spdlog.h>

#include "health/outlier.h"

namespace usher::proxy {

void record_passive_outcome(PoolState& pool, uint32_t index, uint64_t now_ms, bool failed) {
  if (!pool.config.outlier) return;
  const health::Outlier outlier(*pool.config.outlier);
  if (!outlier.observe(pool.live[index], failed)) return;
  uint32_t ejected = 0, members = 0;
  pool.for_each_member([&](uint32_t i) {
    ++members;
    ejected += pool.live[i].ejected_until_ms.load(std::memory_order_relaxed) != 0;
  });
  const auto ejection = outlier.eject(pool.live[index], ejected, members, now_ms);
  if (!ejection) return;
  spdlog::warn(
      "outlier: pool={} backend={} UP -> EJECTED for {} ms after {} consecutive failures (ejection "
      "{})",
      pool.config.name, pool.slot(index).name, ejection->until_ms - now_ms,
      outlier.rule().consecutive_failures, ejection->times);
}

}  // namespace usher::proxy
