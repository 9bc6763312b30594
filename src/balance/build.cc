#include <algorithm>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "balance/algorithms.h"
#include "balance/picker.h"

namespace usher::balance {

namespace {

constexpr AlgorithmInfo kAlgorithms[] = {
    {"round-robin", KeySource::kTicket, "each backend in turn"},
    {"weighted-round-robin", KeySource::kTicket,
     "turns in proportion to weight, interleaved (smooth)"},
    {"least-connections", KeySource::kTicket, "fewest active requests per unit of weight"},
    {"random", KeySource::kRandom, "uniform at random, weighted"},
    {"power-of-two", KeySource::kRandom, "two random candidates, the less loaded wins"},
    {"least-response-time", KeySource::kTicket, "lowest peak-EWMA latency x (active + 1)"},
    {"ip-hash", KeySource::kHash, "client IP on a Maglev table"},
    {"hash", KeySource::kHash, "hash_key on a Maglev table"},
    {"hash-bounded", KeySource::kHash, "hash_key on a Maglev table with bounded loads"},
};

}  // namespace

std::span<const AlgorithmInfo> algorithms() {
  return kAlgorithms;
}

const AlgorithmInfo* find_algorithm(std::string_view name) {
  for (const AlgorithmInfo& a : kAlgorithms) {
    if (a.name == name) return &a;
  }
  return nullptr;
}

Expected<std::unique_ptr<Picker>> build(std::string_view algorithm, const BackendSnapshot& snapshot,
                                        const Options& options) {
  if (snapshot.backends.empty()) return Error{"a pool needs at least one backend"};
  if (options.locality && find_algorithm(algorithm)) {
    return make_tiered(algorithm, snapshot, options);
  }
  if (algorithm == "round-robin") return make_round_robin(snapshot);
  if (algorithm == "weighted-round-robin") return make_weighted_round_robin(snapshot);
  if (algorithm == "least-connections") return make_least_connections(snapshot, options);
  if (algorithm == "least-response-time") return make_least_response_time(snapshot, options);
  if (algorithm == "random") return make_random(snapshot, options);
  if (algorithm == "power-of-two") return make_power_of_two(snapshot, options);
  if (algorithm == "ip-hash" || algorithm == "hash") return make_maglev(snapshot, options, false);
  if (algorithm == "hash-bounded") return make_maglev(snapshot, options, true);
  return Error{"unknown balance algorithm '" + std::string(algorithm) + "'"};
}

uint64_t hash_key(std::string_view bytes) {
  return XXH3_64bits(bytes.data(), bytes.size());
}

double effective_weight(const BackendSnapshot& snapshot, LiveView live, uint32_t i, uint64_t now_ms,
                        uint64_t slow_start_ms) {
  double weight = snapshot.backends[i].weight;
  if (slow_start_ms == 0) return weight;
  uint64_t since = live[i].serving_since_ms.load(std::memory_order_relaxed);
  if (since == 0 || now_ms >= since + slow_start_ms) return weight;
  double ramp =
      now_ms > since ? static_cast<double>(now_ms - since) / static_cast<double>(slow_start_ms) : 0;
  return weight * std::max(0.05, ramp);
}

}  // namespace usher::balance
