#include "balance/live.h"

#include <cmath>

namespace usher::balance {

void LiveState::observe_latency(uint32_t i, double sample_ms, uint64_t now_ms, double decay_ms) {
  BackendLive& b = backends_[i];
  double current = b.latency_ms.load(std::memory_order_relaxed);
  uint64_t last = b.latency_updated_ms.load(std::memory_order_relaxed);
  double next = sample_ms;
  if (current > 0 && sample_ms < current) {
    double elapsed = now_ms > last ? static_cast<double>(now_ms - last) : 0.0;
    double keep = std::exp(-elapsed / decay_ms);
    next = current * keep + sample_ms * (1 - keep);
  }
  b.latency_ms.store(next, std::memory_order_relaxed);
  b.latency_updated_ms.store(now_ms, std::memory_order_relaxed);
}

}  // namespace usher::balance
