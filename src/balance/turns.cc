// Round-robin and smooth weighted round-robin: both read a ticket from the pool's shared counter,
// so the picker itself holds no per-pick state and needs no lock.
#include <numeric>
#include <vector>

#include "balance/algorithms.h"

namespace usher::balance {

namespace {

class RoundRobinPicker final : public Picker {
 public:
  explicit RoundRobinPicker(uint32_t count) : Picker(count) {}
  // With some backends down, turns go round the usable ones only: the next backend in line does
  // not inherit a dead one's share.
  uint32_t pick(const PickInput& input, LiveView live) const override {
    const auto turn = static_cast<uint32_t>(input.key % size());
    if (live.usable(turn)) return turn;
    uint32_t usable = 0;
    for (uint32_t i = 0; i < size(); ++i) usable += live.usable(i);
    if (usable == 0) return kNoBackend;
    uint64_t nth = input.key % usable;
    for (uint32_t i = 0; i < size(); ++i) {
      if (live.usable(i) && nth-- == 0) return i;
    }
    return kNoBackend;
  }
};

// nginx's smooth weighted round-robin (current += weight; pick the largest; it gives back the
// total), run once over a whole cycle at build time: pick(ticket) is then a table lookup, and
// 5:3:2 interleaves as a b c a a b a c b a instead of bursting a a a a a.
class SmoothWeightedPicker final : public Picker {
 public:
  explicit SmoothWeightedPicker(const BackendSnapshot& snapshot)
      : Picker(static_cast<uint32_t>(snapshot.backends.size())) {
    uint64_t divisor = 0;
    for (const BackendInfo& b : snapshot.backends) divisor = std::gcd(divisor, uint64_t{b.weight});
    std::vector<int64_t> weight, current(size(), 0);
    int64_t total = 0;
    for (const BackendInfo& b : snapshot.backends) {
      weight.push_back(static_cast<int64_t>(b.weight / divisor));
      total += weight.back();
    }
    sequence_.reserve(static_cast<size_t>(total));
    for (int64_t turn = 0; turn < total; ++turn) {
      uint32_t best = 0;
      for (uint32_t i = 0; i < size(); ++i) {
        current[i] += weight[i];
        if (current[i] > current[best]) best = i;
      }
      current[best] -= total;
      sequence_.push_back(best);
    }
  }
  // An unusable backend's turns go to the turns after it, so the others keep their proportions.
  uint32_t pick(const PickInput& input, LiveView live) const override {
    const uint64_t start = input.key % sequence_.size();
    for (uint64_t step = 0; step < sequence_.size(); ++step) {
      uint32_t b = sequence_[(start + step) % sequence_.size()];
      if (live.usable(b)) return b;
    }
    return kNoBackend;
  }

 private:
  std::vector<uint32_t> sequence_;
};

}  // namespace

std::unique_ptr<Picker> make_round_robin(const BackendSnapshot& snapshot) {
  return std::make_unique<RoundRobinPicker>(static_cast<uint32_t>(snapshot.backends.size()));
}

std::unique_ptr<Picker> make_weighted_round_robin(const BackendSnapshot& snapshot) {
  return std::make_unique<SmoothWeightedPicker>(snapshot);
}

}  // namespace usher::balance
