#pragma once
// The immutable view of a pool's backends that every balancing algorithm reads. A membership
// or weight change builds a new snapshot; nothing in one changes after it is built.
#include <cstdint>
#include <string>
#include <vector>

#include "base/address.h"

namespace usher::balance {

struct BackendInfo {
  Address address;
  uint32_t weight = 1;
  std::string zone;    // where it runs, for locality-aware pools; empty: unknown
  std::string region;  // empty: unknown (not this usher's region, unless the zone is its zone)
};

struct BackendSnapshot {
  std::vector<BackendInfo> backends;
};

}  // namespace usher::balance
