#pragma once
// Balancing algorithms as pure components: built once from an immutable snapshot, then
// pick(key, live counters, now) -> the backend to try first. The proxy, the tests and the
// simulator all call these same objects.
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "balance/live.h"
#include "balance/snapshot.h"
#include "base/expected.h"

namespace usher::balance {

// What the caller feeds as the pick key.
enum class KeySource : uint8_t {
  kTicket,  // the pool's shared counter, one per request (turns, tie-breaks)
  kRandom,  // a fresh random number per request
  kHash,    // a hash of the request's key (client IP, header, cookie, URI, query parameter)
};

struct PickInput {
  uint64_t key = 0;
  uint64_t now_ms = 0;
};

// Where this usher runs: a locality-aware pool prefers backends in this zone, then this region.
struct Locality {
  std::string zone;
  std::string region;
};

struct Options {
  double hash_balance_factor = 1.25;  // bounded-load hashing: capacity = ceil(c * mean load)
  double latency_decay_ms = 10'000;   // peak-EWMA time constant
  uint64_t slow_start_ms = 0;         // ramp of a new or recovered backend's weight; 0 = off
  std::optional<Locality> locality;   // set: the pool is locality-aware (balance/locality.h)
};

// Returned by pick() when no backend of the pool is usable (all failed their health checks).
inline constexpr uint32_t kNoBackend = ~0u;

class Picker {
 public:
  virtual ~Picker() = default;
  // Any thread; reads only the immutable picker and relaxed live counters. Never returns an
  // unusable (unhealthy) backend; kNoBackend when there is none.
  virtual uint32_t pick(const PickInput& input, LiveView live) const = 0;
  // Where a request goes after the backends in `tried` failed it: a usable backend not among
  // them, in the algorithm's own fall-back order, or kNoBackend. By default the next usable one
  // after the last tried, in slot order; Maglev walks on along its table from the key's slot.
  virtual uint32_t fallback(const PickInput& input, std::span<const uint32_t> tried,
                            LiveView live) const;
  uint32_t size() const { return count_; }

 protected:
  explicit Picker(uint32_t count) : count_(count) {}

 private:
  uint32_t count_;
};

struct AlgorithmInfo {
  std::string_view name;
  KeySource key;
  std::string_view summary;
};

std::span<const AlgorithmInfo> algorithms();
const AlgorithmInfo* find_algorithm(std::string_view name);

// Fails on an unknown name or an empty snapshot.
Expected<std::unique_ptr<Picker>> build(std::string_view algorithm, const BackendSnapshot& snapshot,
                                        const Options& options);

// 64-bit hash of a request key (XXH3).
uint64_t hash_key(std::string_view bytes);

}  // namespace usher::balance
