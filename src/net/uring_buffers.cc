#include "net/uring_buffers.h"

#include <sys/mman.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace usher::net {

ProvidedBuffers::~ProvidedBuffers() {
  if (ring_ != nullptr) ::munmap(ring_, ring_bytes_);
  if (memory_ != nullptr) ::munmap(memory_, memory_bytes_);
}

bool ProvidedBuffers::init(io_uring& ring, unsigned count, unsigned size, std::string& error) {
  // The kernel reads the ring's entries without copying them: it wants whole pages.
  ring_bytes_ = count * sizeof(io_uring_buf);
  void* entries =
      ::mmap(nullptr, ring_bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  memory_bytes_ = size_t{count} * size;
  void* memory =
      ::mmap(nullptr, memory_bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (entries == MAP_FAILED || memory == MAP_FAILED) {
    error = std::string("mmap: ") + std::strerror(errno);
    if (entries != MAP_FAILED) ::munmap(entries, ring_bytes_);
    if (memory != MAP_FAILED) ::munmap(memory, memory_bytes_);
    return false;
  }
  ring_ = static_cast<io_uring_buf_ring*>(entries);
  memory_ = static_cast<char*>(memory);
  io_uring_buf_reg reg{};
  reg.ring_addr = reinterpret_cast<uintptr_t>(ring_);
  reg.ring_entries = count;
  reg.bgid = kGroup;
  if (int rc = io_uring_register_buf_ring(&ring, &reg, 0); rc < 0) {
    error = std::string("provided buffer ring: ") + std::strerror(-rc);
    return false;
  }
  size_ = size;
  mask_ = io_uring_buf_ring_mask(count);
  length_.assign(count, 0);
  next_.assign(count, Received::kNone);
  io_uring_buf_ring_init(ring_);
  for (unsigned id = 0; id < count; ++id) {
    io_uring_buf_ring_add(ring_, data(static_cast<uint16_t>(id)), size_, static_cast<uint16_t>(id),
                          mask_, static_cast<int>(id));
  }
  io_uring_buf_ring_advance(ring_, static_cast<int>(count));
  available_ = count;
  return true;
}

void ProvidedBuffers::append(Received& into, uint16_t id, uint32_t length) {
  --available_;
  length_[id] = length;
  next_[id] = Received::kNone;
  if (!into.in_ring()) {
    into.head = id;
    into.offset = 0;
  } else {
    next_[into.tail] = id;
  }
  into.tail = id;
  ++into.count;
}

size_t ProvidedBuffers::copy_out(Received& from, char* buffer, size_t length) {
  size_t copied = 0;
  if (!from.spilled.empty()) {
    copied = std::min(length, from.spilled.size() - from.spilled_read);
    std::memcpy(buffer, from.spilled.data() + from.spilled_read, copied);
    from.spilled_read += copied;
    // Drained: the memory goes, as a socket that waits holds none.
    if (from.spilled_read == from.spilled.size()) release_spilled(from);
  }
  return copied + copy_from_ring(from, buffer + copied, length - copied);
}

size_t ProvidedBuffers::copy_from_ring(Received& from, char* buffer, size_t length) {
  size_t copied = 0;
  while (copied < length && from.in_ring()) {
    const uint16_t id = from.head;
    const size_t chunk = std::min<size_t>(length - copied, length_[id] - from.offset);
    std::memcpy(buffer + copied, data(id) + from.offset, chunk);
    copied += chunk;
    from.offset += static_cast<uint32_t>(chunk);
    if (from.offset == length_[id]) pop(from);
  }
  return copied;
}

void ProvidedBuffers::release(Received& from) {
  while (from.in_ring()) pop(from);
  release_spilled(from);
}

void ProvidedBuffers::spill(Received& from) {
  size_t bytes = 0;
  for (uint16_t id = from.head; id != Received::kNone; id = next_[id]) bytes += length_[id];
  bytes -= from.offset;
  const size_t start = from.spilled.size();
  from.spilled.resize(start + bytes);
  copy_from_ring(from, from.spilled.data() + start, bytes);
}

void ProvidedBuffers::release_spilled(Received& from) {
  std::string().swap(from.spilled);
  from.spilled_read = 0;
}

void ProvidedBuffers::pop(Received& from) {
  const uint16_t id = from.head;
  from.head = next_[id];
  if (!from.in_ring()) from.tail = Received::kNone;
  from.offset = 0;
  --from.count;
  give_back(id);
}

void ProvidedBuffers::discard(uint16_t id) {
  --available_;
  give_back(id);
}

void ProvidedBuffers::give_back(uint16_t id) {
  io_uring_buf_ring_add(ring_, data(id), size_, id, mask_, 0);
  io_uring_buf_ring_advance(ring_, 1);
  ++available_;
}

}  // namespace usher::net
