#pragma once
// Counts the heap allocations made on the calling thread while it lives (base/allocation_count.h).
#include <atomic>
#include <cstdint>

#include "base/allocation_count.h"

namespace usher {

class CountedAllocations {
 public:
  CountedAllocations() { count_allocations_into(&count_); }
  ~CountedAllocations() { count_allocations_into(nullptr); }
  CountedAllocations(const CountedAllocations&) = delete;
  CountedAllocations& operator=(const CountedAllocations&) = delete;
  uint64_t count() const { return count_.load(); }

 private:
  std::atomic<uint64_t> count_{0};
};

}  // namespace usher
