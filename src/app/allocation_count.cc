// Replaces the global operator new and delete for the whole binary with malloc-backed versions
// that count a thread's allocations when it asked for it (base/allocation_count.h). The cost when
// nobody counts is one thread-local load per allocation.
#include "base/allocation_count.h"

#include <cstdlib>
#include <new>

namespace usher {

namespace {

void count(std::atomic<uint64_t>* counter) {
  if (counter) {
    counter->store(counter->load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }
}

void* allocate(std::size_t size) {
  count(allocation_counter());
  if (void* p = std::malloc(size ? size : 1)) return p;
  throw std::bad_alloc();
}

void* allocate_aligned(std::size_t size, std::align_val_t align) {
  count(allocation_counter());
  const auto alignment = static_cast<std::size_t>(align);
  // aligned_alloc wants a size that is a multiple of the alignment.
  if (void* p = std::aligned_alloc(alignment, (size + alignment - 1) / alignment * alignment)) {
    return p;
  }
  throw std::bad_alloc();
}

}  // namespace

}  // namespace usher

void* operator new(std::size_t size) {
  return usher::allocate(size);
}
void* operator new[](std::size_t size) {
  return usher::allocate(size);
}
void* operator new(std::size_t size, const std::nothrow_t&) noexcept {
  try {
    return usher::allocate(size);
  } catch (...) {
    return nullptr;
  }
}
void* operator new[](std::size_t size, const std::nothrow_t&) noexcept {
  try {
    return usher::allocate(size);
  } catch (...) {
    return nullptr;
  }
}
void* operator new(std::size_t size, std::align_val_t align) {
  return usher::allocate_aligned(size, align);
}
void* operator new[](std::size_t size, std::align_val_t align) {
  return usher::allocate_aligned(size, align);
}
void operator delete(void* p) noexcept {
  std::free(p);
}
void operator delete[](void* p) noexcept {
  std::free(p);
}
void operator delete(void* p, std::size_t) noexcept {
  std::free(p);
}
void operator delete[](void* p, std::size_t) noexcept {
  std::free(p);
}
void operator delete(void* p, std::align_val_t) noexcept {
  std::free(p);
}
void operator delete[](void* p, std::align_val_t) noexcept {
  std::free(p);
}
void operator delete(void* p, std::size_t, std::align_val_t) noexcept {
  std::free(p);
}
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept {
  std::free(p);
}
