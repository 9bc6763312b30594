#pragma once
// The algorithm implementations behind balance::build(). Internal to src/balance.
#include <memory>

#include "balance/picker.h"

namespace usher::balance {

std::unique_ptr<Picker> make_round_robin(const BackendSnapshot& snapshot);
std::unique_ptr<Picker> make_weighted_round_robin(const BackendSnapshot& snapshot);
std::unique_ptr<Picker> make_least_connections(const BackendSnapshot& snapshot,
                                               const Options& options);
std::unique_ptr<Picker> make_least_response_time(const BackendSnapshot& snapshot,
                                                 const Options& options);
std::unique_ptr<Picker> make_random(const BackendSnapshot& snapshot, const Options& options);
std::unique_ptr<Picker> make_power_of_two(const BackendSnapshot& snapshot, const Options& options);
std::unique_ptr<Picker> make_maglev(const BackendSnapshot& snapshot, const Options& options,
                                    bool bounded);

// A 64-bit mix (splitmix64's finaliser) so two draws from one key are independent.
inline uint64_t mix(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// Locality-aware pools (locality.cc): one picker of `algorithm` per tier.
std::unique_ptr<Picker> make_tiered(std::string_view algorithm, const BackendSnapshot& snapshot,
                                    const Options& options);

// From `start`, the first backend at or after it (cyclically, by `next`) that is usable.
template <typename Next>
uint32_t first_usable(LiveView live, uint32_t start, uint32_t count, Next&& next) {
  uint32_t i = start;
  for (uint32_t tries = 0; tries < count; ++tries, i = next(i)) {
    if (live.usable(i)) return i;
  }
  return kNoBackend;
}

// A backend's weight now, ramped linearly over slow start from 5 % to 100 %.
double effective_weight(const BackendSnapshot& snapshot, LiveView live, uint32_t i, uint64_t now_ms,
                        uint64_t slow_start_ms);

}  // namespace usher::balance
