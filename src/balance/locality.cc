#include "balance/locality.h"

#include <algorithm>

#include "balance/algorithms.h"

namespace usher::balance {

std::string_view tier_name(Tier tier) {
  switch (tier) {
    case Tier::kZone:
      return "zone";
    case Tier::kRegion:
      return "region";
    case Tier::kOther:
      return "other";
  }
  return "other";
}

Tier tier_of(const BackendInfo& backend, const Locality& here) {
  const bool region_unset_or_ours = backend.region.empty() || backend.region == here.region;
  if (!backend.zone.empty() && backend.zone == here.zone && region_unset_or_ours) {
    return Tier::kZone;
  }
  if (!backend.region.empty() && backend.region == here.region) return Tier::kRegion;
  return Tier::kOther;
}

void compute_shares(TierLoads& tiers) {
  double left = 1, covered = 0;
  for (TierLoad& t : tiers) {
    const double availability =
        t.weight > 0 ? std::min(1.0, kOverprovisioningFactor * t.healthy_weight / t.weight) : 0;
    t.share = std::min(availability, left);
    left -= t.share;
    covered += t.share;
  }
  if (covered <= 0) {
    for (TierLoad& t : tiers) {
      if (t.weight > 0) return void(t.share = 1);
    }
    return;
  }
  for (TierLoad& t : tiers) t.share /= covered;
}

TieredPicker::TieredPicker(std::string_view algorithm, const BackendSnapshot& snapshot,
                           const Options& options)
    : Picker(static_cast<uint32_t>(snapshot.backends.size())),
      key_source_(find_algorithm(algorithm)->key) {
  Options within = options;
  within.locality.reset();
  for (size_t t = 0; t < kTiers; ++t) {
    BackendSnapshot part;
    std::vector<uint32_t> members;
    for (uint32_t i = 0; i < size(); ++i) {
      const BackendInfo& b = snapshot.backends[i];
      if (static_cast<size_t>(tier_of(b, *options.locality)) != t) continue;
      members.push_back(i);
      part.backends.push_back(b);
    }
    if (members.empty()) continue;
    // The snapshot is not empty and the algorithm was found, so this builds.
    groups_.push_back(
        {static_cast<Tier>(t), std::move(members), std::move(*build(algorithm, part, within))});
  }
  for (const BackendInfo& b : snapshot.backends) {
    weights_.push_back(b.weight);
    tier_.push_back(tier_of(b, *options.locality));
  }
}

// Healthy means passing its checks and serving by the operator's word, panic or not: in panic
// every backend is used, so locality stops choosing (as Envoy's zone-aware routing does) and the
// tiers take traffic by weight, rather than a dead local zone keeping all of it.
TierLoads TieredPicker::loads(const LiveState& live) const {
  TierLoads loads;
  for (uint32_t i = 0; i < size(); ++i) {
    if (!live.member(i)) continue;
    TierLoad& t = loads[static_cast<size_t>(tier_[i])];
    ++t.backends;
    t.weight += weights_[i];
    const BackendLive& b = live[i];
    if (b.admin_state.load(std::memory_order_relaxed) == kServing &&
        b.healthy.load(std::memory_order_relaxed)) {
      t.healthy_weight += weights_[i];
    }
  }
  if (!live.panic()) {
    compute_shares(loads);
    return loads;
  }
  double total = 0;
  for (const TierLoad& t : loads) total += t.weight;
  for (TierLoad& t : loads) t.share = total > 0 ? t.weight / total : 0;
  return loads;
}

Tier TieredPicker::choose(const TierLoads& loads, uint64_t key) const {
  // Tickets are consecutive: their golden-ratio multiples spread evenly over [0, 1) in any
  // window (a Weyl sequence). Hashes and random numbers are mixed so that the tier and the
  // pick within it draw on independent bits.
  const uint64_t bits = key_source_ == KeySource::kTicket ? key * 0x9e3779b97f4a7c15ULL : mix(key);
  const double point = static_cast<double>(bits >> 11) * 0x1.0p-53;
  double below = 0;
  Tier last = Tier::kOther;
  for (size_t t = 0; t < kTiers; ++t) {
    if (loads[t].share <= 0) continue;
    below += loads[t].share;
    last = static_cast<Tier>(t);
    if (point < below) return last;
  }
  return last;  // rounding left the point above the sum
}

template <typename Try>
uint32_t TieredPicker::each_group_from(const PickInput& input, LiveView live, Try&& attempt) const {
  const Tier chosen = choose(loads(live.state()), input.key);
  size_t first = 0;
  while (first + 1 < groups_.size() && groups_[first].tier < chosen) ++first;
  for (size_t step = 0; step < groups_.size(); ++step) {
    const Group& g = groups_[(first + step) % groups_.size()];
    const uint32_t b = attempt(g, LiveView(live.state(), g.members));
    if (b != kNoBackend) return g.members[b];
  }
  return kNoBackend;
}

// A tier whose backends are all busy (max_connections) or went down since the shares were
// worked out passes the request on to the next tier rather than failing it.
uint32_t TieredPicker::pick(const PickInput& input, LiveView live) const {
  return each_group_from(input, live, [&](const Group& g, LiveView members) {
    return g.picker->pick(input, members);
  });
}

uint32_t TieredPicker::fallback(const PickInput& input, std::span<const uint32_t> tried,
                                LiveView live) const {
  return each_group_from(input, live, [&](const Group& g, LiveView members) {
    // The tried backends of this tier, as its picker numbers them.
    std::array<uint32_t, 16> local{};
    size_t count = 0;
    for (uint32_t slot : tried) {
      auto it = std::lower_bound(g.members.begin(), g.members.end(), slot);
      if (it != g.members.end() && *it == slot && count < local.size()) {
        local[count++] = static_cast<uint32_t>(it - g.members.begin());
      }
    }
    if (count == 0) return g.picker->pick(input, members);
    return g.picker->fallback(input, {local.data(), count}, members);
  });
}

std::unique_ptr<Picker> make_tiered(std::string_view algorithm, const BackendSnapshot& snapshot,
                                    const Options& options) {
  return std::make_unique<TieredPicker>(algorithm, snapshot, options);
}

}  // namespace usher::balance
