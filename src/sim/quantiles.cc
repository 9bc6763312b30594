#include "sim/quantiles.h"

#include <algorithm>
#include <cmath>

namespace usher::sim {

namespace {

// Buckets from 1 us to about 12 days, each 0.1 % wider than the last.
constexpr double kSmallest = 1e-6;
constexpr double kGrowth = 1.001;
const double kLogGrowth = std::log(kGrowth);
constexpr size_t kBuckets = 27'700;

size_t bucket_of(double seconds) {
  if (!(seconds > kSmallest)) return 0;  // NaN too
  const double index = std::log(seconds / kSmallest) / kLogGrowth;
  return index < static_cast<double>(kBuckets - 1) ? static_cast<size_t>(index) : kBuckets - 1;
}

// The bucket's geometric middle: at most half a bucket (0.05 %) from any value in it.
double value_of(size_t bucket) {
  return kSmallest * std::pow(kGrowth, static_cast<double>(bucket) + 0.5);
}

}  // namespace

void Quantiles::add(double seconds) {
  ++count_;
  if (buckets_.empty()) {
    if (!exact_.empty() && seconds < exact_.back()) exact_sorted_ = false;
    exact_.push_back(seconds);
    if (exact_.size() > exact_limit_) fold_into_histogram();
    return;
  }
  ++buckets_[bucket_of(seconds)];
}

void Quantiles::fold_into_histogram() {
  buckets_.assign(kBuckets, 0);
  for (double seconds : exact_) ++buckets_[bucket_of(seconds)];
  exact_.clear();
  exact_.shrink_to_fit();
}

double Quantiles::at(double q) {
  if (count_ == 0) return 0;
  const uint64_t rank =
      std::min(count_ - 1, static_cast<uint64_t>(q * static_cast<double>(count_)));
  if (buckets_.empty()) {
    if (!exact_sorted_) {
      std::sort(exact_.begin(), exact_.end());
      exact_sorted_ = true;
    }
    return exact_[rank];
  }
  uint64_t seen = 0;
  for (size_t bucket = 0; bucket < buckets_.size(); ++bucket) {
    seen += buckets_[bucket];
    if (seen > rank) return value_of(bucket);
  }
  return value_of(kBuckets - 1);
}

}  // namespace usher::sim
