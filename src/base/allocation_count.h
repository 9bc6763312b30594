#pragma once
// Counts the heap allocations (operator new, and what the frame and buffer pools could not serve)
// a thread makes, for threads that ask for it: the workers do, so that a steady-state request
// path with zero allocations stays that way (a test watches the count). The usher binary replaces
// operator new with a malloc-backed one that bumps the calling thread's counter
// (src/app/allocation_count.cc); elsewhere nothing counts.
#include <atomic>
#include <cstdint>

namespace usher {

// From now on, the calling thread's allocations add to *counter (nullptr: stop counting).
// The counter is written by this thread only, read by any.
void count_allocations_into(std::atomic<uint64_t>* counter);

// The calling thread's counter, or nullptr (for the replaced operator new).
std::atomic<uint64_t>* allocation_counter();

// Counts one allocation made with malloc directly (pools that fall back to the heap).
void count_allocation();

}  // namespace usher
