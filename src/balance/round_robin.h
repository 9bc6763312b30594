#pragma once
// Plain round-robin: the key is a ticket from the pool's shared counter, so turns are fair across
// all workers without any per-pick state in the picker itself.
#include "balance/snapshot.h"

namespace usher::balance {

class RoundRobin final {
 public:
  static RoundRobin build(const BackendSnapshot& snapshot) {
    return RoundRobin(static_cast<uint32_t>(snapshot.backends.size()));
  }
  // Any thread; reads only the immutable size.
  CandidateOrder pick(uint64_t ticket) const {
    return CandidateOrder(count_ ? static_cast<uint32_t>(ticket % count_) : 0, count_);
  }

 private:
  explicit RoundRobin(uint32_t count) : count_(count) {}
  uint32_t count_;
};

}  // namespace usher::balance
