#pragma once
// max_connections_per_client: connections open per client address across all workers of the
// process, checked at accept. A fixed table of 64-bit words, each a 48-bit tag of the client's
// hash and a 16-bit count (count 0: the word is free); the hash picks a bucket of 8 words (one
// cache line), and acquire and release are one compare-and-swap or atomic add on one word. No
// lock, no allocation after construction.
// - A bucket full of other clients admits the connection uncounted (overflows()): a flood of
//   distinct addresses must not lock new clients out, so the table fails open, never closed.
// - Two clients in one bucket with the same 48-bit tag share a count (about 1 in 2^48 a pair).
// - A client's first two connections, accepted by two workers at the same instant, can claim two
//   different words, but only if a third connection in the bucket closes between their scans
//   (otherwise both pick the same first free word and one retries). The limit is checked against
//   the sum of the client's words, so counts stay exact; only acquires racing each other at the
//   limit itself can then let one connection per extra word past it, until those close.
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>

namespace usher::protect {

class ConnectionCounts {
 public:
  static constexpr uint32_t kUntracked = ~uint32_t{0};

  // limit_per_client is capped at 65535 (the count's 16 bits); 0 refuses every connection.
  // `words` is rounded up to a power of two, at least one bucket of 8.
  explicit ConnectionCounts(uint32_t limit_per_client, size_t words = 65536);

  // The connection holds its ticket until it closes and hands it to release(), which finds the
  // word it counted in without a second search.
  struct Ticket {
    uint32_t word = kUntracked;  // kUntracked: admitted uncounted
    bool counted() const { return word != kUntracked; }
  };

  // Any thread, lock-free. client_hash must be well mixed (xxHash of the address without port).
  // nullopt: the client already holds limit_per_client connections.
  std::optional<Ticket> acquire(uint64_t client_hash);
  // Any thread; exactly once per ticket that acquire() returned.
  void release(Ticket ticket);

  // The client's connections counted now (for tests and the admin API).
  uint32_t count(uint64_t client_hash) const;
  uint64_t overflows() const { return overflows_.load(std::memory_order_relaxed); }
  uint32_t limit() const { return limit_; }
  size_t words() const { return buckets_ * kWordsPerBucket; }

 private:
  static constexpr size_t kWordsPerBucket = 8;
  struct alignas(64) Bucket {
    std::atomic<uint64_t> words[kWordsPerBucket]{};
  };

  uint32_t limit_;
  size_t buckets_;
  std::unique_ptr<Bucket[]> table_;
  alignas(64) std::atomic<uint64_t> overflows_{0};
};

}  // namespace usher::protect
