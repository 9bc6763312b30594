#include "net/buffer_pool.h"

#include <cstdlib>
#include <cstring>
#include <new>
#include <utility>

namespace usher::net {

namespace {
// A worker keeps at most this many idle buffers; more go back to the allocator after a burst.
constexpr size_t kMaxIdleBuffers = 64;
}  // namespace

Buffer::Buffer(Buffer&& other) noexcept
    : pool_(std::exchange(other.pool_, nullptr)),
      data_(std::exchange(other.data_, nullptr)),
      capacity_(std::exchange(other.capacity_, 0)),
      begin_(std::exchange(other.begin_, 0)),
      end_(std::exchange(other.end_, 0)) {}

Buffer& Buffer::operator=(Buffer&& other) noexcept {
  if (this != &other) {
    release();
    pool_ = std::exchange(other.pool_, nullptr);
    data_ = std::exchange(other.data_, nullptr);
    capacity_ = std::exchange(other.capacity_, 0);
    begin_ = std::exchange(other.begin_, 0);
    end_ = std::exchange(other.end_, 0);
  }
  return *this;
}

void Buffer::consume(size_t n) {
  begin_ += n;
  if (begin_ == end_) begin_ = end_ = 0;
}

void Buffer::compact() {
  if (begin_ == 0) return;
  std::memmove(data_, data_ + begin_, end_ - begin_);
  end_ -= begin_;
  begin_ = 0;
}

char* Buffer::tail() {
  if (tail_room() < capacity_ / 4) compact();
  return data_ + end_;
}

void Buffer::release() {
  if (data_) pool_->give_back(data_);
  pool_ = nullptr;
  data_ = nullptr;
  capacity_ = begin_ = end_ = 0;
}

BufferPool::BufferPool(size_t buffer_size) : buffer_size_(buffer_size) {
  idle_.reserve(kMaxIdleBuffers);
}

BufferPool::~BufferPool() {
  for (char* data : idle_) std::free(data);
}

Buffer BufferPool::take() {
  char* data;
  if (!idle_.empty()) {
    data = idle_.back();
    idle_.pop_back();
  } else {
    data = static_cast<char*>(std::malloc(buffer_size_));
    if (data == nullptr) throw std::bad_alloc();
  }
  return Buffer(this, data, buffer_size_);
}

void BufferPool::give_back(char* data) {
  if (idle_.size() < kMaxIdleBuffers) {
    idle_.push_back(data);
  } else {
    std::free(data);
    released_bytes_ += buffer_size_;
  }
}

}  // namespace usher::net
