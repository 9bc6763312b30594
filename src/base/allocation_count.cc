#include "base/allocation_count.h"

namespace usher {

namespace {
thread_local std::atomic<uint64_t>* tls_counter = nullptr;
}  // namespace

void count_allocations_into(std::atomic<uint64_t>* counter) {
  tls_counter = counter;
}

std::atomic<uint64_t>* allocation_counter() {
  return tls_counter;
}

void count_allocation() {
  if (tls_counter) {
    tls_counter->store(tls_counter->load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }
}

}  // namespace usher
