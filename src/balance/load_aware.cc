// Algorithms that read live load: least connections, least response time, random and
// power-of-two choices. Weights (ramped by slow start) divide each backend's load.
#include <algorithm>
#include <cmath>
#include <vector>

#include "balance/algorithms.h"

namespace usher::balance {

namespace {

// Picks the lowest cost, scanning from a rotating start so that ties spread round-robin.
template <typename Cost>
uint32_t lowest_cost(LiveView live, uint32_t count, uint64_t ticket, Cost&& cost) {
  uint32_t start = static_cast<uint32_t>(ticket % count);
  uint32_t best = kNoBackend;
  double best_cost = 0;
  for (uint32_t step = 0; step < count; ++step) {
    uint32_t i = (start + step) % count;
    if (!live.usable(i)) continue;
    double c = cost(i);
    if (best == kNoBackend || c < best_cost) {
      best = i;
      best_cost = c;
    }
  }
  return best;
}

// A backend's load per unit of its (slow-start ramped) weight: what the load-aware
// algorithms compare.
struct WeightedLoad {
  BackendSnapshot snapshot;
  Options options;

  double weight(LiveView live, uint32_t i, uint64_t now_ms) const {
    return effective_weight(snapshot, live, i, now_ms, options.slow_start_ms);
  }
  double load(LiveView live, uint32_t i, uint64_t now_ms) const {
    return (live.active(i) + 1.0) / weight(live, i, now_ms);
  }
};

class LeastConnectionsPicker final : public Picker {
 public:
  LeastConnectionsPicker(const BackendSnapshot& snapshot, const Options& options)
      : Picker(static_cast<uint32_t>(snapshot.backends.size())), load_{snapshot, options} {}

  uint32_t pick(const PickInput& input, LiveView live) const override {
    return lowest_cost(live, size(), input.key,
                       [&](uint32_t i) { return load_.load(live, i, input.now_ms); });
  }

 private:
  WeightedLoad load_;
};

// Peak-EWMA latency x (active + 1) / weight. A backend without an estimate is charged the
// mean of the others' so it is neither flooded nor starved, and an estimate that goes unrefreshed
// drifts back towards that mean with the decay constant: a once-slow backend is tried again,
// and one that happened to finish a short request last is not flooded on that one sample.
class LeastResponseTimePicker final : public Picker {
 public:
  LeastResponseTimePicker(const BackendSnapshot& snapshot, const Options& options)
      : Picker(static_cast<uint32_t>(snapshot.backends.size())), load_{snapshot, options} {}

  uint32_t pick(const PickInput& input, LiveView live) const override {
    double known_sum = 0;
    uint32_t known = 0;
    for (uint32_t i = 0; i < size(); ++i) {
      double estimate = live[i].latency_ms.load(std::memory_order_relaxed);
      if (estimate > 0) {
        known_sum += estimate;
        ++known;
      }
    }
    const double neutral = known ? known_sum / known : 1.0;
    return lowest_cost(live, size(), input.key, [&](uint32_t i) {
      return estimate(live, i, input.now_ms, neutral) * load_.load(live, i, input.now_ms);
    });
  }

 private:
  double estimate(LiveView live, uint32_t i, uint64_t now_ms, double neutral) const {
    double latency = live[i].latency_ms.load(std::memory_order_relaxed);
    if (latency <= 0) return neutral;
    uint64_t updated = live[i].latency_updated_ms.load(std::memory_order_relaxed);
    if (now_ms <= updated) return latency;
    double keep = std::exp(-static_cast<double>(now_ms - updated) / load_.options.latency_decay_ms);
    return neutral + (latency - neutral) * keep;
  }

  WeightedLoad load_;
};

// Maps 64 random bits to a backend with probability proportional to its weight.
class WeightedDraw {
 public:
  explicit WeightedDraw(const BackendSnapshot& snapshot) {
    uint64_t total = 0;
    for (const BackendInfo& b : snapshot.backends) cumulative_.push_back(total += b.weight);
  }
  uint32_t draw(uint64_t bits) const {
    uint64_t point =
        static_cast<uint64_t>((static_cast<unsigned __int128>(bits) * cumulative_.back()) >> 64);
    auto it = std::upper_bound(cumulative_.begin(), cumulative_.end(), point);
    return static_cast<uint32_t>(it - cumulative_.begin());
  }
  // A draw among usable backends: redraws a few times, then takes the next usable one.
  uint32_t usable_draw(uint64_t bits, LiveView live) const {
    uint32_t b = draw(bits);
    for (int redraw = 0; redraw < 4 && !live.usable(b); ++redraw) b = draw(bits = mix(bits));
    const auto count = static_cast<uint32_t>(cumulative_.size());
    return first_usable(live, b, count, [&](uint32_t i) { return (i + 1) % count; });
  }

 private:
  std::vector<uint64_t> cumulative_;
};

class RandomPicker final : public Picker {
 public:
  explicit RandomPicker(const BackendSnapshot& snapshot)
      : Picker(static_cast<uint32_t>(snapshot.backends.size())), draw_(snapshot) {}
  uint32_t pick(const PickInput& input, LiveView live) const override {
    return draw_.usable_draw(input.key, live);
  }

 private:
  WeightedDraw draw_;
};

class PowerOfTwoPicker final : public Picker {
 public:
  PowerOfTwoPicker(const BackendSnapshot& snapshot, const Options& options)
      : Picker(static_cast<uint32_t>(snapshot.backends.size())),
        load_{snapshot, options},
        draw_(snapshot) {}

  uint32_t pick(const PickInput& input, LiveView live) const override {
    uint32_t a = draw_.usable_draw(input.key, live);
    if (a == kNoBackend || size() == 1) return a;
    uint32_t b = draw_.usable_draw(mix(input.key), live);
    if (b == a) b = (a + 1 + static_cast<uint32_t>(mix(~input.key) % (size() - 1))) % size();
    if (!live.usable(b)) return a;
    return load_.load(live, b, input.now_ms) < load_.load(live, a, input.now_ms) ? b : a;
  }

 private:
  WeightedLoad load_;
  WeightedDraw draw_;
};

}  // namespace

std::unique_ptr<Picker> make_least_connections(const BackendSnapshot& snapshot,
                                               const Options& options) {
  return std::make_unique<LeastConnectionsPicker>(snapshot, options);
}

std::unique_ptr<Picker> make_least_response_time(const BackendSnapshot& snapshot,
                                                 const Options& options) {
  return std::make_unique<LeastResponseTimePicker>(snapshot, options);
}

std::unique_ptr<Picker> make_random(const BackendSnapshot& snapshot, const Options&) {
  return std::make_unique<RandomPicker>(snapshot);
}

std::unique_ptr<Picker> make_power_of_two(const BackendSnapshot& snapshot, const Options& options) {
  return std::make_unique<PowerOfTwoPicker>(snapshot, options);
}

}  // namespace usher::balance
