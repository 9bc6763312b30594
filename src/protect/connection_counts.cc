#include "protect/connection_counts.h"

#include <algorithm>
#include <bit>

namespace usher::protect {

namespace {

constexpr uint64_t kCountMask = 0xFFFF;

uint64_t tag_of(uint64_t hash) {
  return hash & ~kCountMask;
}
uint32_t count_of(uint64_t word) {
  return static_cast<uint32_t>(word & kCountMask);
}

}  // namespace

ConnectionCounts::ConnectionCounts(uint32_t limit_per_client, size_t words)
    : limit_(std::min<uint32_t>(limit_per_client, kCountMask)),
      // Tickets name a word in 32 bits, kUntracked excluded.
      buckets_(std::bit_ceil(std::clamp(words, kWordsPerBucket, size_t{1} << 31)) /
               kWordsPerBucket),
      table_(std::make_unique<Bucket[]>(buckets_)) {}

// Sequentially consistent scan and compare-and-swap (free on x86): the header's account of when
// one client can hold two words reasons about one order of all reads and writes of the bucket.
std::optional<ConnectionCounts::Ticket> ConnectionCounts::acquire(uint64_t client_hash) {
  const uint64_t tag = tag_of(client_hash);
  const size_t bucket = client_hash & (buckets_ - 1);
  std::atomic<uint64_t>* words = table_[bucket].words;
  for (;;) {
    uint64_t seen[kWordsPerBucket];
    size_t own = kWordsPerBucket;
    size_t free = kWordsPerBucket;
    uint32_t total = 0;
    for (size_t i = 0; i < kWordsPerBucket; ++i) {
      seen[i] = words[i].load();
      if (count_of(seen[i]) == 0) {
        if (free == kWordsPerBucket) free = i;
      } else if (tag_of(seen[i]) == tag) {
        total += count_of(seen[i]);
        if (own == kWordsPerBucket) own = i;
      }
    }
    if (total >= limit_) return std::nullopt;
    const size_t slot = own != kWordsPerBucket ? own : free;
    if (slot == kWordsPerBucket) {
      overflows_.fetch_add(1, std::memory_order_relaxed);
      return Ticket{};
    }
    // total < limit <= 0xFFFF, so the count cannot carry into the tag.
    const uint64_t desired = own != kWordsPerBucket ? seen[slot] + 1 : tag | 1;
    if (words[slot].compare_exchange_strong(seen[slot], desired))
      return Ticket{static_cast<uint32_t>(bucket * kWordsPerBucket + slot)};
  }
}

void ConnectionCounts::release(Ticket ticket) {
  if (!ticket.counted()) return;
  // The ticket holds one of the word's count, so this cannot borrow from the tag.
  table_[ticket.word / kWordsPerBucket].words[ticket.word % kWordsPerBucket].fetch_sub(1);
}

uint32_t ConnectionCounts::count(uint64_t client_hash) const {
  const uint64_t tag = tag_of(client_hash);
  const std::atomic<uint64_t>* words = table_[client_hash & (buckets_ - 1)].words;
  uint32_t total = 0;
  for (size_t i = 0; i < kWordsPerBucket; ++i) {
    const uint64_t word = words[i].load();
    if (count_of(word) != 0 && tag_of(word) == tag) total += count_of(word);
  }
  return total;
}

}  // namespace usher::protect
