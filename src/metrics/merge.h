#pragma once
// Reading counters across the workers' shards, for the exposition (registry.cc, protection.cc).
#include <fmt/format.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "metrics/prometheus.h"
#include "metrics/registry.h"

namespace usher::metrics {

// Sums one counter over all shards.
template <typename Get>
inline uint64_t merged(const std::vector<std::unique_ptr<Shard>>& shards, Get get) {
  uint64_t total = 0;
  for (const auto& shard : shards) total += get(*shard).read();
  return total;
}

template <typename Get>
inline void write_histogram(Exposition& e, std::string_view name, Labels labels,
                            const std::vector<std::unique_ptr<Shard>>& shards, Get get) {
  uint64_t cumulative = 0;
  uint64_t sum_micros = 0;
  const std::string bucket = std::string(name) + "_bucket";
  for (size_t i = 0; i < kBuckets; ++i) {
    for (const auto& shard : shards) cumulative += get(*shard).bucket(i);
    std::string le = i + 1 < kBuckets ? fmt::format("{}", kBucketBounds[i]) : "+Inf";
    e.sample(bucket, labels, {"le", le}, cumulative);
  }
  for (const auto& shard : shards) sum_micros += get(*shard).sum_micros();
  e.sample(std::string(name) + "_sum", labels, static_cast<double>(sum_micros) / 1e6);
  e.sample(std::string(name) + "_count", labels, cumulative);
}

}  // namespace usher::metrics
