#include <sys/mman.h>

#include <algorithm>
#include <cstring>
#include <new>

#include "trace/span.h"

namespace usher::trace {

void SpanRecord::set(Text which, std::string_view value) {
  const size_t n = std::min<size_t>(value.size(), kCaps[which]);
  std::memcpy(text + offset(which), value.data(), n);
  lengths[which] = static_cast<uint8_t>(n);
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

}  // namespace usher::trace
