#include "net/buffer_pool.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>
#include <utility>

#include "base/allocation_count.h"

namespace usher::net {

namespace {
// What an idle worker keeps: enough for a few dozen requests at once without the allocator.
constexpr size_t kReserve = 64;
// Returns per epoch: a few milliseconds under load, seconds when the load is light.
constexpr uint32_t kEpochReturns = 4096;

char*& next_of(char* data) {
  return *reinterpret_cast<char**>(data);
}
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

BufferPool::BufferPool(size_t buffer_size) : buffer_size_(buffer_size) {}

BufferPool::~BufferPool() {
  release_idle(idle_count_);
}

Buffer BufferPool::take() {
  taken_since_trim_ = true;
  char* data = idle_;
  if (data != nullptr) {
    idle_ = next_of(data);
    fewest_idle_ = std::min(fewest_idle_, --idle_count_);
  } else {
    count_allocation();
    data = static_cast<char*>(std::malloc(buffer_size_));
    if (data == nullptr) throw std::bad_alloc();
  }
  return Buffer(this, data, buffer_size_);
}

void BufferPool::give_back(char* data) {
  next_of(data) = idle_;
  idle_ = data;
  ++idle_count_;
  if (++returns_ < kEpochReturns) return;
  // Buffers idle all epoch long were not needed by this load: it will not miss them.
  release_idle(std::min(fewest_idle_, idle_count_ > kReserve ? idle_count_ - kReserve : 0));
  returns_ = 0;
  fewest_idle_ = idle_count_;
}

void BufferPool::trim() {
  if (std::exchange(taken_since_trim_, false)) return;
  if (idle_count_ > kReserve) release_idle(idle_count_ - kReserve);
  fewest_idle_ = idle_count_;
}

void BufferPool::release_idle(size_t count) {
  for (; count > 0; --count) {
    char* data = idle_;
    idle_ = next_of(data);
    --idle_count_;
    std::free(data);
    released_bytes_ += buffer_size_;
  }
}

}  // namespace usher::net
