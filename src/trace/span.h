#pragma once
// Finished spans on their way from a worker to the exporter thread: fixed-size records in a
// single-producer single-consumer ring per worker. A worker fills a request's records in place
// (no allocation, no lock, no system call, nothing formatted) or, when the ring has no room for
// all of them, counts them dropped.
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

#include "trace/context.h"

namespace usher::trace {

enum class SpanKind : uint8_t { kServer = 2, kClient = 3 };  // OTLP's numbers

// One finished span. A request's server span carries the texts the request's spans share; its
// client spans follow it in the ring, and the exporter gives them the same texts. Texts are
// packed one after the other (set in the order of Text), so a record touches only the cache
// lines its bytes need: a client span one or two, a server span two or three.
struct SpanRecord {
  enum Text : uint8_t { kMethod, kPath, kRoute, kPool, kError, kTexts };
  static constexpr uint8_t kCaps[kTexts] = {16, 200, 64, 64, 16};
  static constexpr size_t kTextBytes = 16 + 200 + 64 + 64 + 16;

  TraceId trace;
  uint64_t span = 0;
  uint64_t parent = 0;    // 0: a root span
  uint64_t start_ns = 0;  // Unix time
  uint64_t end_ns = 0;
  uint16_t status = 0;  // the HTTP response status; 0: none came
  SpanKind kind = SpanKind::kServer;
  uint8_t retry = 0;  // client spans: which try (0 the first)
  // Client spans: the backend's address, as it is in a sockaddr (IPv4 in the first 4 bytes).
  uint8_t backend_family = 0;  // 0, AF_INET or AF_INET6
  uint16_t backend_port = 0;
  uint8_t lengths[kTexts] = {};
  uint8_t backend_ip[16] = {};
  char text[kTextBytes];

  std::string_view get(Text which) const { return {text + offset(which), lengths[which]}; }
  // Texts are set in order, each once: kMethod first, kError last.
  void set(Text which, std::string_view value) {
    const size_t n = value.size() < kCaps[which] ? value.size() : kCaps[which];
    if (n) std::memcpy(text + offset(which), value.data(), n);
    lengths[which] = static_cast<uint8_t>(n);
  }
  // A client span's texts: none but kError, set after this.
  void clear_texts() { std::memset(lengths, 0, sizeof lengths); }
  // The shared texts (all but kError) from `server`, in front of this span's own kError.
  void copy_texts(const SpanRecord& server);

 private:
  size_t offset(Text which) const {
    size_t at = 0;
    for (size_t i = 0; i < which; ++i) at += lengths[i];
    return at;
  }
};

// A worker's side of tracing: fresh ids, the Unix time, and a ring of kSlots records.
class Channel {
 public:
  static constexpr size_t kSlots = 4096;

  Channel();
  ~Channel();
  Channel(const Channel&) = delete;
  Channel& operator=(const Channel&) = delete;

  // Worker thread: a fresh trace or span id.
  uint64_t new_id() { return ids_.next(); }
  // Worker thread: Unix time minus the steady clock, read again once a second.
  int64_t unix_offset_ns(int64_t steady_ns);

  // Worker thread: room for `n` records, filled as reserved(0 .. n-1) and then committed; false
  // when the ring has no room for all of them (they are counted dropped).
  bool reserve(size_t n) {
    const uint64_t tail = tail_.load(std::memory_order_relaxed);
    if (tail + n - head_seen_ > kSlots) {
      head_seen_ = head_.load(std::memory_order_acquire);
      if (tail + n - head_seen_ > kSlots) {
        dropped_.store(dropped_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
        return false;
      }
    }
    return true;
  }
  SpanRecord& reserved(size_t i) {
    return slots_[(tail_.load(std::memory_order_relaxed) + i) % kSlots];
  }
  void commit(size_t n) {
    tail_.store(tail_.load(std::memory_order_relaxed) + n, std::memory_order_release);
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
  SpanRecord* slots_;            // mapped memory: pages are touched only once tracing uses them
  IdGenerator ids_;              // worker's
  int64_t offset_ns_ = 0;        // worker's: Unix minus steady
  int64_t offset_taken_ns_ = 0;  // worker's: steady time it was read
  uint64_t head_seen_ = 0;       // worker's copy of head_
  alignas(64) std::atomic<uint64_t> head_{0};  // next record the exporter takes
  alignas(64) std::atomic<uint64_t> tail_{0};  // next record the worker fills
  alignas(64) std::atomic<uint64_t> dropped_{0};
};

}  // namespace usher::trace
