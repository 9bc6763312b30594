#pragma once
// Finished spans on their way from a worker to the exporter thread: fixed-size records in a
// single-producer single-consumer ring per worker. A worker fills a record in place (no
// allocation, no lock, no syscall) or, when the ring is full, counts the span dropped.
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "trace/context.h"

namespace usher::trace {

enum class SpanKind : uint8_t { kServer = 2, kClient = 3 };  // OTLP's numbers

// One finished span: what the OTLP export says of it, its texts copied (cut at their caps).
struct SpanRecord {
  enum Text : uint8_t { kMethod, kPath, kRoute, kPool, kBackend, kError, kTexts };
  static constexpr uint8_t kCaps[kTexts] = {16, 200, 64, 64, 64, 16};
  static constexpr size_t kTextBytes = 16 + 200 + 64 + 64 + 64 + 16;

  TraceId trace;
  uint64_t span = 0;
  uint64_t parent = 0;    // 0: a root span
  uint64_t start_ns = 0;  // Unix time
  uint64_t end_ns = 0;
  uint16_t status = 0;  // the HTTP response status; 0: none came
  SpanKind kind = SpanKind::kServer;
  uint8_t retry = 0;  // client spans: which try (0 the first)
  uint8_t lengths[kTexts] = {};
  char text[kTextBytes];

  std::string_view get(Text which) const { return {text + offset(which), lengths[which]}; }
  void set(Text which, std::string_view value);

 private:
  static constexpr size_t offset(Text which) {
    size_t at = 0;
    for (size_t i = 0; i < which; ++i) at += kCaps[i];
    return at;
  }
};

// A worker's side of the export: a ring of kSlots records.
class Channel {
 public:
  static constexpr size_t kSlots = 4096;

  Channel();
  ~Channel();
  Channel(const Channel&) = delete;
  Channel& operator=(const Channel&) = delete;

  // Worker thread: a fresh trace or span id.
  uint64_t new_id() { return ids_.next(); }

  // Worker thread: a record to fill and then commit(), or null (the ring is full: the span is
  // counted dropped).
  SpanRecord* reserve() {
    const uint64_t tail = tail_.load(std::memory_order_relaxed);
    if (tail - head_seen_ >= kSlots) {
      head_seen_ = head_.load(std::memory_order_acquire);
      if (tail - head_seen_ >= kSlots) {
        dropped_.store(dropped_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
        return nullptr;
      }
    }
    return &slots_[tail % kSlots];
  }
  void commit() {
    tail_.store(tail_.load(std::memory_order_relaxed) + 1, std::memory_order_release);
  }

  // Exporter thread: hands up to `most` committed records to `take` (one at a time, valid for
  // the call) and frees their slots; returns how many.
  template <typename Take>
  size_t drain(size_t most, Take&& take) {
    uint64_t head = head_.load(std::memory_order_relaxed);
    const uint64_t tail = tail_.load(std::memory_order_acquire);
    size_t n = 0;
    for (; head != tail && n < most; ++head, ++n) take(slots_[head % kSlots]);
    head_.store(head, std::memory_order_release);
    return n;
  }

  // Any thread: spans the worker found no room for.
  uint64_t dropped() const { return dropped_.load(std::memory_order_relaxed); }

 private:
  SpanRecord* slots_;       // mapped memory: pages are touched only once tracing uses them
  IdGenerator ids_;         // worker's
  uint64_t head_seen_ = 0;  // worker's copy of head_
  alignas(64) std::atomic<uint64_t> head_{0};  // next record the exporter takes
  alignas(64) std::atomic<uint64_t> tail_{0};  // next record the worker fills
  alignas(64) std::atomic<uint64_t> dropped_{0};
};

}  // namespace usher::trace
