#pragma once
// Latency quantiles in bounded memory: exact while the samples fit in kExactSamples (or the limit
// given) (every built-in scenario does, so their figures stay exact), then a log-scale histogram
// whose buckets are 0.1 % wide, so a replay of any length holds a fixed amount.
#include <cstddef>
#include <cstdint>
#include <vector>

namespace usher::sim {

class Quantiles {
 public:
  static constexpr size_t kExactSamples = size_t{1} << 20;

  explicit Quantiles(size_t exact_samples = kExactSamples) : exact_limit_(exact_samples) {}

  void add(double seconds);
  uint64_t count() const { return count_; }
  // The value of rank floor(q * count) (the smallest is rank 0); 0 without samples. Within
  // 0.1 % once the histogram holds the samples.
  double at(double q);

 private:
  void fold_into_histogram();

  size_t exact_limit_;
  uint64_t count_ = 0;
  std::vector<double> exact_;
  bool exact_sorted_ = true;
  std::vector<uint64_t> buckets_;  // empty until the exact samples overflow
};

}  // namespace usher::sim
