#pragma once
// Coroutine frames come from per-thread free lists, so a request's coroutines cost no malloc in
// steady state. Thread rule: a frame is freed on the thread that allocated it (coroutines never
// migrate between workers).
#include <cstddef>

namespace usher::net {

void* allocate_frame(std::size_t size);
void free_frame(void* frame, std::size_t size) noexcept;

}  // namespace usher::net
