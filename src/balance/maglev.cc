// Consistent hashing on a Maglev lookup table (Eisenbud et al., NSDI 2016): each backend fills
// table slots in the order of its own permutation, so when one of N backends leaves, only about
// 1/N of the keys move, and every backend owns an almost equal share. The bounded-load variant
// (Mirrokni, Thorup, Zadimoghaddam, "Consistent Hashing with Bounded Loads") walks on from the
// key's slot past backends already at ceil(c x mean load), so a hot key or a skewed client
// population cannot overload one server.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "balance/algorithms.h"

namespace usher::balance {

namespace {

bool is_prime(uint64_t n) {
  if (n < 2) return false;
  for (uint64_t d = 2; d * d <= n; ++d) {
    if (n % d == 0) return false;
  }
  return true;
}

// Prime and large against N: Maglev's balance and disruption bounds need M >> N.
uint64_t table_size(size_t backends) {
  uint64_t m = std::max<uint64_t>(65'537, 100 * backends);
  while (!is_prime(m)) ++m;
  return m;
}

class MaglevPicker final : public Picker {
 public:
  MaglevPicker(const BackendSnapshot& snapshot, const Options& options, bool bounded)
      : Picker(static_cast<uint32_t>(snapshot.backends.size())),
        snapshot_(snapshot),
        factor_(options.hash_balance_factor),
        bounded_(bounded) {
    populate();
    for (const BackendInfo& b : snapshot_.backends) total_weight_ += b.weight;
  }

  uint32_t pick(const PickInput& input, LiveView live) const override {
    // An unusable backend's keys walk on along the table: they spread over the others, and
    // come back to it unchanged when it returns.
    const uint64_t slot = input.key % table_.size();
    uint64_t total_active = 0;
    if (bounded_) {
      for (uint32_t i = 0; i < size(); ++i) total_active += live.active(i);
    }
    uint32_t fallback = kNoBackend;
    for (uint64_t step = 0; step < table_.size(); ++step) {
      uint32_t b = table_[(slot + step) % table_.size()];
      if (!live.usable(b)) continue;
      if (!bounded_ || live.active(b) < capacity(b, total_active)) return b;
      if (fallback == kNoBackend) fallback = b;
    }
    return fallback;
  }

  // The next backends of the key's walk along the table, as if the tried ones had left: the
  // same ones its keys move to when they do.
  uint32_t fallback(const PickInput& input, std::span<const uint32_t> tried,
                    LiveView live) const override {
    const uint64_t slot = input.key % table_.size();
    for (uint64_t step = 0; step < table_.size(); ++step) {
      const uint32_t b = table_[(slot + step) % table_.size()];
      if (live.usable(b) && std::find(tried.begin(), tried.end(), b) == tried.end()) return b;
    }
    return kNoBackend;
  }

 private:
  // The most requests backend b may hold once one more arrives: ceil(c x its share of the load).
  uint64_t capacity(uint32_t b, uint64_t total_active) const {
    double share =
        static_cast<double>(total_active + 1) * snapshot_.backends[b].weight / total_weight_;
    return static_cast<uint64_t>(std::ceil(factor_ * share));
  }

  void populate() {
    const uint64_t m = table_size(size());
    std::vector<uint64_t> offset(size()), skip(size()), next(size(), 0);
    uint64_t divisor = 0;
    for (const BackendInfo& b : snapshot_.backends) divisor = std::gcd(divisor, uint64_t{b.weight});
    for (uint32_t i = 0; i < size(); ++i) {
      std::string name = snapshot_.backends[i].address.to_string();
      offset[i] = hash_key(name) % m;
      skip[i] = hash_key(name + "#skip") % (m - 1) + 1;
    }
    constexpr uint32_t kEmpty = ~0u;
    table_.assign(m, kEmpty);
    uint64_t filled = 0;
    // Weighted Maglev: per round, each backend claims as many slots as its (reduced) weight.
    while (filled < m) {
      for (uint32_t i = 0; i < size() && filled < m; ++i) {
        for (uint64_t turn = 0; turn < snapshot_.backends[i].weight / divisor && filled < m;
             ++turn) {
          uint64_t slot;
          do {
            slot = (offset[i] + next[i] * skip[i]) % m;
            ++next[i];
          } while (table_[slot] != kEmpty);
          table_[slot] = i;
          ++filled;
        }
      }
    }
  }

  BackendSnapshot snapshot_;
  double factor_;
  bool bounded_;
  uint64_t total_weight_ = 0;
  std::vector<uint32_t> table_;
};

}  // namespace

std::unique_ptr<Picker> make_maglev(const BackendSnapshot& snapshot, const Options& options,
                                    bool bounded) {
  return std::make_unique<MaglevPicker>(snapshot, options, bounded);
}

}  // namespace usher::balance
