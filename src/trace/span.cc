#include "trace/span.h"

#include <sys/mman.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <new>

namespace usher::trace {

void SpanRecord::copy_texts(const SpanRecord& server) {
  char error[kCaps[kError]];
  const std::string_view own = get(kError);
  std::memcpy(error, own.data(), own.size());
  std::memcpy(text, server.text, server.offset(kError));
  std::memcpy(lengths, server.lengths, kError);
  set(kError, {error, own.size()});
}

Channel::Channel() {
  static_assert(std::is_trivially_copyable_v<SpanRecord>);
  void* memory = ::mmap(nullptr, kSlots * sizeof(SpanRecord), PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (memory == MAP_FAILED) throw std::bad_alloc();
  slots_ = static_cast<SpanRecord*>(memory);
}

Channel::~Channel() {
  ::munmap(slots_, kSlots * sizeof(SpanRecord));
}

int64_t Channel::unix_offset_ns(int64_t steady_ns) {
  constexpr int64_t kRefresh = 1'000'000'000;
  if (offset_taken_ns_ == 0 || steady_ns - offset_taken_ns_ >= kRefresh) {
    using namespace std::chrono;
    const int64_t steady =
        duration_cast<nanoseconds>(steady_clock::now().time_since_epoch()).count();
    const int64_t unix = duration_cast<nanoseconds>(system_clock::now().time_since_epoch()).count();
    offset_ns_ = unix - steady;
    offset_taken_ns_ = steady;
  }
  return offset_ns_;
}

}  // namespace usher::trace
