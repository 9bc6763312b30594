#include "protect/rate_limiter.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>

namespace usher::protect {

namespace {

constexpr int kTatBits = 48;
constexpr uint64_t kTatMask = (uint64_t{1} << kTatBits) - 1;
// Half the 48-bit circle, with room: TATs further ahead than this could not be told from the past.
constexpr double kMaxHorizonUs = double(uint64_t{1} << 46);
constexpr int64_t kNoEpoch = std::numeric_limits<int64_t>::min();
// Workers' clocks disagree by the time since each last read its clock: a TAT this much further
// ahead than any live one can be is still live to a worker whose clock lags. Beyond it, it is a
// word untouched for 8.9 years and come round the 48-bit circle.
constexpr int64_t kClockSkewUs = 60'000'000;

// Tag 0 is left to words never used, so that an empty table holds no key.
uint64_t tag_of(uint64_t hash) {
  uint64_t tag = hash >> kTatBits;
  return tag ? tag : 1;
}
uint64_t word_tag(uint64_t word) {
  return word >> kTatBits;
}
uint64_t make_word(uint64_t tag, uint64_t tat) {
  return tag << kTatBits | (tat & kTatMask);
}
// a - b on the 48-bit circle, as a signed number.
int64_t diff48(uint64_t a, uint64_t b) {
  return static_cast<int64_t>((a - b) << (64 - kTatBits)) >> (64 - kTatBits);
}

}  // namespace

RateLimiter::RateLimiter(RateLimitPolicy policy, size_t words)
    : policy_(policy),
      buckets_(std::bit_ceil(std::max(words, kWordsPerBucket)) / kWordsPerBucket),
      table_(std::make_unique<Bucket[]>(buckets_)),
      epoch_ns_(kNoEpoch) {
  policy_.burst = std::max<uint32_t>(policy_.burst, 1);
  // Rounded up, so that whole µs never let more through than the configured rate; a rate that is
  // not a positive number limits to the slowest interval the words can hold.
  const double slowest = kMaxHorizonUs / policy_.burst;
  double interval = policy_.per_second > 0 ? std::ceil(1e6 / policy_.per_second) : slowest;
  interval = std::clamp(interval, 1.0, slowest);
  interval_us_ = static_cast<uint64_t>(interval);
  horizon_us_ = interval_us_ * policy_.burst;
}

uint64_t RateLimiter::micros_since_epoch(std::chrono::steady_clock::time_point now) {
  const int64_t ns =
      std::chrono::duration_cast<std::chrono::nanoseconds>(now.time_since_epoch()).count();
  int64_t epoch = epoch_ns_.load(std::memory_order_relaxed);
  if (epoch == kNoEpoch && epoch_ns_.compare_exchange_strong(epoch, ns, std::memory_order_relaxed))
    epoch = ns;
  // Workers' clocks are read at slightly different moments; one a little behind the first
  // take() counts as the epoch itself.
  return ns > epoch ? static_cast<uint64_t>(ns - epoch) / 1000 : 0;
}

// The scan and the compare-and-swap are sequentially consistent (free on x86: plain loads, and a
// locked cmpxchg either way): the claim in the header that two workers taking a new key pick the
// same word reasons about one order of all reads and writes of the bucket.
RateDecision RateLimiter::take(uint64_t key_hash, std::chrono::steady_clock::time_point now_tp) {
  const uint64_t now = micros_since_epoch(now_tp);
  const uint64_t tag = tag_of(key_hash);
  const int64_t interval = static_cast<int64_t>(interval_us_);
  const int64_t horizon = static_cast<int64_t>(horizon_us_);
  const int64_t tau = horizon - interval;  // how far ahead of now the TAT may be and still admit
  // How far the word's TAT is ahead of now; 0 when it has passed (idle) or cannot be a live TAT.
  auto ahead_of = [&](uint64_t word) {
    const int64_t d = diff48(word, now);
    return d > 0 && d <= horizon + kClockSkewUs ? d : int64_t{0};
  };
  std::atomic<uint64_t>* words = table_[key_hash & (buckets_ - 1)].words;
  for (;;) {
    uint64_t seen[kWordsPerBucket];
    size_t own = kWordsPerBucket;
    int64_t own_ahead = 0;
    size_t earliest = 0;
    for (size_t i = 0; i < kWordsPerBucket; ++i) {
      seen[i] = words[i].load();
      if (word_tag(seen[i]) == tag) {
        // Two words with one tag exist only after a race with an eviction (header): the later
        // TAT is the safer state to go on from.
        const int64_t d = ahead_of(seen[i]);
        if (own == kWordsPerBucket || d > own_ahead) {
          own = i;
          own_ahead = d;
        }
      }
      // Earliest by TAT alone, whatever the time: workers whose clocks differ still agree.
      if (diff48(seen[i], seen[earliest]) < 0) earliest = i;
    }
    size_t slot = own;
    int64_t ahead = own_ahead;
    bool evicts = false;
    if (own == kWordsPerBucket) {
      slot = earliest;
      ahead = 0;  // absent: a fresh key
      evicts = ahead_of(seen[earliest]) > 0;
    }
    if (ahead > tau) {
      // Refused: GCRA leaves the TAT as it is, so there is nothing to write.
      return {.allowed = false,
              .remaining = 0,
              .retry_after = Micros(ahead - tau),
              .reset = Micros(ahead)};
    }
    const int64_t next = ahead + interval;
    if (!words[slot].compare_exchange_strong(seen[slot], make_word(tag, now + next))) continue;
    if (evicts) evictions_.fetch_add(1, std::memory_order_relaxed);
    return {.allowed = true,
            .remaining = static_cast<uint32_t>((horizon - next) / interval),
            .retry_after = Micros(0),
            .reset = Micros(next)};
  }
}

}  // namespace usher::protect
