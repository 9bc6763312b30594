#pragma once
// Request rate limits (per route, per listener) with GCRA: one theoretical arrival time (TAT) per
// key, so a fresh key may send `burst` requests at once and then one per emission interval
// T = 1/rate, and no window of any length W ever sees more than burst + W x rate (a fixed window
// lets a client spend two bursts across its boundary). One limiter serves all workers of the
// process, so a key gets one limit, not one per worker.
//
// Memory is a fixed table of 64-bit words, one per key: a 16-bit tag of the key's hash and a 48-bit
// TAT in µs since the limiter's first take(). A key's hash picks a bucket of 8 words (one cache
// line); a decision is one compare-and-swap on one word, retried from the scan when another
// worker got there first. No lock, no allocation after construction. What that costs:
// - Two keys active in one bucket with the same tag share a limit (about 1 in 2^16 per such pair).
// - A word whose TAT has passed is idle, the same as an absent key, and any new key may take it.
//   With all 8 words busy a new key evicts the one with the earliest TAT (counted in evictions()),
//   and that key's next request starts a fresh burst. The victim is the key nearest to having its
//   full burst back, so it loses the least debt: a flood of distinct keys sending one request
//   each writes TATs of at most now + T, so it can only evict a key less than T from a full
//   burst, which gains at most one request by it.
// - Two workers taking a new key at the same instant pick the same word (the earliest TAT in
//   the bucket, a choice that does not depend on their clocks) and one of them retries; only an
//   eviction between their two scans can make them pick different words, and then the key gets
//   one extra request.
// - TATs compare modulo 2^48 µs (8.9 years): a word untouched that long may look busy again for
//   up to burst x T + 1 minute.
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>

namespace usher::protect {

using Micros = std::chrono::microseconds;

struct RateLimitPolicy {
  double per_second;  // > 0; T = 1/per_second is rounded up to whole µs, never above the rate
  uint32_t burst;     // >= 1 (0 is taken as 1)
};

struct RateDecision {
  bool allowed;
  uint32_t remaining;  // requests still allowed right now after this one (RateLimit's r=)
  Micros retry_after;  // refused: until the next request would be allowed; allowed: 0
  Micros reset;        // until the full burst is available again (RateLimit's t=)
};

class RateLimiter {
 public:
  // `words` is rounded up to a power of two, at least one bucket of 8.
  explicit RateLimiter(RateLimitPolicy policy, size_t words = 65536);

  // Any thread, lock-free. key_hash must be a well-mixed hash (xxHash): its low bits pick the
  // bucket, its top 16 bits are the tag.
  RateDecision take(uint64_t key_hash, std::chrono::steady_clock::time_point now);

  uint64_t evictions() const { return evictions_.load(std::memory_order_relaxed); }
  const RateLimitPolicy& policy() const { return policy_; }
  size_t words() const { return buckets_ * kWordsPerBucket; }

 private:
  static constexpr size_t kWordsPerBucket = 8;
  struct alignas(64) Bucket {
    std::atomic<uint64_t> words[kWordsPerBucket]{};
  };

  uint64_t micros_since_epoch(std::chrono::steady_clock::time_point now);

  RateLimitPolicy policy_;
  uint64_t interval_us_;  // T
  uint64_t horizon_us_;   // burst x T: how far ahead of its writer's clock a TAT can be
  size_t buckets_;
  std::unique_ptr<Bucket[]> table_;
  // Read by every take(); kept off the line that evictions_ bounces between workers.
  alignas(64) std::atomic<int64_t> epoch_ns_;
  alignas(64) std::atomic<uint64_t> evictions_{0};
};

}  // namespace usher::protect
