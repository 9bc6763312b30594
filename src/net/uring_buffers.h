#pragma once
// The receive buffers the io_uring backend lends the kernel (a provided-buffer ring). A multishot
// receive takes one per completion, so a socket waiting for bytes holds none of its own; the
// bytes stay in it until the socket's reader copies them out, which hands the buffer back.
// The ring is shared by all of a worker's sockets: a socket whose reader stalls (a slow client's
// response waiting on its upstream) can have its bytes moved out to its own memory (spill), so
// that hundreds of stalled sockets cannot take the buffers the others are being read with.
#include <liburing.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace usher::net {

// One socket's received bytes that nobody has read yet: those spilled out of the ring, then a
// list of ring buffers, oldest first.
struct Received {
  static constexpr uint16_t kNone = 0xffff;
  uint16_t head = kNone;
  uint16_t tail = kNone;
  uint16_t count = 0;   // ring buffers held
  uint32_t offset = 0;  // bytes of the head buffer already read
  std::string spilled;  // bytes moved out of the ring, read before the ring's
  size_t spilled_read = 0;
  bool in_ring() const { return head != kNone; }
  bool empty() const { return !in_ring() && spilled_read == spilled.size(); }
};

class ProvidedBuffers {
 public:
  static constexpr uint16_t kGroup = 0;

  ProvidedBuffers() = default;
  ProvidedBuffers(const ProvidedBuffers&) = delete;
  ProvidedBuffers& operator=(const ProvidedBuffers&) = delete;
  ~ProvidedBuffers();

  // Registers `count` (a power of two) buffers of `size` bytes; false (why, in error) when
  // the kernel refuses.
  bool init(io_uring& ring, unsigned count, unsigned size, std::string& error);

  // How many buffers the kernel can still fill.
  unsigned available() const { return available_; }
  // A completion filled buffer `id` with `length` bytes for `into`.
  void append(Received& into, uint16_t id, uint32_t length);
  // Copies up to `length` bytes out of `from`, handing emptied buffers back; returns the count.
  size_t copy_out(Received& from, char* buffer, size_t length);
  // Hands every buffer of `from` back unread and frees its spilled bytes (its socket is gone).
  void release(Received& from);
  // Moves the bytes of `from`'s ring buffers to its own memory and hands the buffers back.
  void spill(Received& from);
  // A completion filled buffer `id` for a socket that is gone.
  void discard(uint16_t id);

 private:
  char* data(uint16_t id) const { return memory_ + size_t{id} * size_; }
  size_t copy_from_ring(Received& from, char* buffer, size_t length);
  static void release_spilled(Received& from);
  // Unlinks the head buffer of `from` and hands it back.
  void pop(Received& from);
  void give_back(uint16_t id);

  io_uring_buf_ring* ring_ = nullptr;
  size_t ring_bytes_ = 0;
  char* memory_ = nullptr;
  size_t memory_bytes_ = 0;
  unsigned size_ = 0;
  int mask_ = 0;
  unsigned available_ = 0;
  std::vector<uint32_t> length_;  // per buffer: bytes received into it
  std::vector<uint16_t> next_;    // per buffer: the next in its socket's list
};

}  // namespace usher::net
