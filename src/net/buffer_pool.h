#pragma once
// Fixed-size I/O buffers lent to a connection only while it has bytes in flight, so an idle
// connection holds none. Thread rule: one pool per worker, used only by that worker.
#include <cstddef>
#include <cstdint>
#include <utility>

namespace usher::net {

class BufferPool;

// A lent buffer with a window [begin, end) of unconsumed bytes. Returns itself on destruction.
class Buffer {
 public:
  Buffer() = default;
  Buffer(Buffer&& other) noexcept;
  Buffer& operator=(Buffer&& other) noexcept;
  ~Buffer() { release(); }

  explicit operator bool() const { return data_ != nullptr; }
  char* data() { return data_; }
  size_t capacity() const { return capacity_; }

  // Unconsumed bytes.
  const char* begin() const { return data_ + begin_; }
  size_t size() const { return end_ - begin_; }
  bool empty() const { return begin_ == end_; }
  void consume(size_t n);

  // Free space after the unconsumed bytes; compacts first when that space is short.
  char* tail();
  size_t tail_room() const { return capacity_ - end_; }
  void commit(size_t n) { end_ += n; }
  void compact();

  void release();

 private:
  friend class BufferPool;
  Buffer(BufferPool* pool, char* data, size_t capacity)
      : pool_(pool), data_(data), capacity_(capacity) {}

  BufferPool* pool_ = nullptr;
  char* data_ = nullptr;
  size_t capacity_ = 0;
  size_t begin_ = 0;
  size_t end_ = 0;
};

// Keeps the buffers the current load needs, so that a steady load takes and returns buffers
// without touching the allocator: what stayed idle through a whole epoch of returns was not
// needed and goes back, as does everything past a small reserve once the load has stopped.
class BufferPool {
 public:
  explicit BufferPool(size_t buffer_size);
  BufferPool(const BufferPool&) = delete;
  BufferPool& operator=(const BufferPool&) = delete;
  ~BufferPool();

  Buffer take();
  size_t buffer_size() const { return buffer_size_; }
  size_t idle_count() const { return idle_count_; }
  // Called now and then while the worker has nothing to do: when nothing was taken since the
  // previous call, the load has stopped and only the reserve stays.
  void trim();
  // Bytes handed back to the allocator since the last call: after a burst, a hint that the
  // allocator holds memory worth returning to the system.
  size_t take_released_bytes() { return std::exchange(released_bytes_, 0); }

 private:
  friend class Buffer;
  void give_back(char* data);
  void release_idle(size_t count);

  size_t buffer_size_;
  char* idle_ = nullptr;  // a list threaded through the idle buffers' first bytes
  size_t idle_count_ = 0;
  size_t fewest_idle_ = 0;  // since the epoch began
  uint32_t returns_ = 0;    // in this epoch
  bool taken_since_trim_ = false;
  size_t released_bytes_ = 0;
};

}  // namespace usher::net
