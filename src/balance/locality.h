#pragma once
// Locality-aware balancing. A pool's backends fall into tiers by where they run: this usher's
// zone, its region, anywhere else. Each tier takes the traffic its healthy capacity covers,
// with Envoy's overprovisioning factor of 1.4: a tier keeps its whole share while at least
// 1/1.4 (71.4 %) of its weight is healthy; below that it keeps healthy/total x 1.4 of it and the
// remainder spills to the next tier, so traffic moves over in proportion to what failed, not all
// at once. Within a tier the pool's own algorithm picks, on a picker built over that tier's
// backends only. Pure: the shares are a function of the live health, worked out at each pick.
#include <array>
#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "balance/picker.h"

namespace usher::balance {

enum class Tier : uint8_t { kZone, kRegion, kOther };
inline constexpr size_t kTiers = 3;
inline constexpr double kOverprovisioningFactor = 1.4;

// "zone", "region", "other": in metrics, the admin API and logs.
std::string_view tier_name(Tier tier);

// Same zone: the zone is this usher's and the region is either unset or this usher's (zone names
// need not be unique across regions). Same region: otherwise the region is this usher's. A
// backend that names neither is in the last tier.
Tier tier_of(const BackendInfo& backend, const Locality& here);

struct TierLoad {
  uint32_t backends = 0;      // members (not removed from the pool)
  double weight = 0;          // of the members
  double healthy_weight = 0;  // of the members serving now (healthy, or all in panic)
  double share = 0;           // of the requests, 0 to 1
};
using TierLoads = std::array<TierLoad, kTiers>;

// Sets each tier's share from its weights. In order, a tier takes
//   min(1.4 x healthy_weight / weight, what is left), capped at 1;
// if the tiers together cover less than all (too little is healthy anywhere), the shares are
// scaled up to sum to 1, in proportion. With nothing healthy at all, the first non-empty tier
// keeps everything (the pick then finds no backend, as without locality).
void compute_shares(TierLoads& tiers);

// One picker of the pool's algorithm per non-empty tier. A request's tier is a deterministic
// function of its pick key against the current shares: a ticket walks the golden-ratio sequence
// (consecutive requests interleave the tiers smoothly), a hash or random key is mixed (a client's
// key keeps its tier while the shares hold, and only the spilled fraction of keys moves).
class TieredPicker final : public Picker {
 public:
  TieredPicker(std::string_view algorithm, const BackendSnapshot& snapshot, const Options& options);

  // Any thread, like pick(): the tiers' weights and shares against the live state.
  TierLoads loads(const LiveState& live) const;
  // The tier a key goes to with these shares (by position in kTiers order).
  Tier choose(const TierLoads& loads, uint64_t key) const;

  uint32_t pick(const PickInput& input, LiveView live) const override;
  // The chosen tier's own fall-backs first, then the next tiers', then the earlier ones'.
  uint32_t fallback(const PickInput& input, std::span<const uint32_t> tried,
                    LiveView live) const override;

 private:
  struct Group {
    Tier tier;
    std::vector<uint32_t> members;  // the pool's slots, in order
    std::unique_ptr<Picker> picker;
  };

  template <typename Try>
  uint32_t each_group_from(const PickInput& input, LiveView live, Try&& attempt) const;

  std::vector<uint32_t> weights_;  // by slot
  std::vector<Tier> tier_;         // by slot
  std::vector<Group> groups_;      // the non-empty tiers, in order
  KeySource key_source_;
};

}  // namespace usher::balance
