#pragma once
// Appends text and numbers to a fixed caller buffer; remembers overflow instead of failing at
// each step, so writers check once at the end.
#include <charconv>
#include <cstdint>
#include <cstring>
#include <string_view>

namespace usher::proxy::l7 {

class HeadBuffer {
 public:
  HeadBuffer(char* out, size_t capacity) : out_(out), capacity_(capacity) {}

  HeadBuffer& operator<<(std::string_view s) {
    if (s.empty()) return *this;  // an empty view may hold a null pointer: no memcpy
    if (overflow_ || capacity_ - size_ < s.size()) {
      overflow_ = true;
      return *this;
    }
    std::memcpy(out_ + size_, s.data(), s.size());
    size_ += s.size();
    return *this;
  }
  HeadBuffer& operator<<(uint64_t n) {
    char digits[24];
    auto [end, ec] = std::to_chars(digits, digits + sizeof digits, n);
    return *this << std::string_view(digits, static_cast<size_t>(end - digits));
  }
  // Bytes written, or 0 after an overflow.
  size_t finish() const { return overflow_ ? 0 : size_; }

 private:
  char* out_;
  size_t capacity_;
  size_t size_ = 0;
  bool overflow_ = false;
};

}  // namespace usher::proxy::l7
