#include "health/outlier.h"

namespace usher::health {

namespace {
constexpr auto relaxed = std::memory_order_relaxed;
}

bool Outlier::observe(balance::BackendLive& b, bool failed) const {
  if (!failed) {
    if (b.consecutive_failures.load(relaxed)) b.consecutive_failures.store(0, relaxed);
    return false;
  }
  return b.consecutive_failures.fetch_add(1, relaxed) + 1 >= rule_.consecutive_failures;
}

std::optional<Ejection> Outlier::eject(balance::BackendLive& b, uint32_t ejected, uint32_t members,
                                       uint64_t now_ms) const {
  if ((ejected + 1) * 100.0 > rule_.max_ejection_percent * members) return std::nullopt;
  const uint32_t times = b.ejections.load(relaxed) + 1;
  const uint64_t until = now_ms + static_cast<uint64_t>(rule_.base_ejection.count()) * times;
  uint64_t expected = 0;
  if (!b.ejected_until_ms.compare_exchange_strong(expected, until, relaxed)) return std::nullopt;
  b.ejections.store(times, relaxed);
  b.consecutive_failures.store(0, relaxed);
  b.healthy.store(false, relaxed);
  return Ejection{until, times};
}

}  // namespace usher::health
