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
};

struct BackendSnapshot {
  std::vector<BackendInfo> backends;
};

// The order in which a request tries backends: first the pick, then the fall-backs a retry walks.
class CandidateOrder {
 public:
  CandidateOrder(uint32_t first, uint32_t count) : first_(first), count_(count) {}
  uint32_t size() const { return count_; }
  uint32_t at(uint32_t attempt) const { return (first_ + attempt) % count_; }

 private:
  uint32_t first_;
  uint32_t count_;
};

}  // namespace usher::balance
