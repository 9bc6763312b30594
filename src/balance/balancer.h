#pragma once
// One pool's balancing as a single component: the snapshot of its backends, the algorithm's
// picker built over it, the ticket counter and where a request's pick key comes from. It hands
// a request its candidates in order: the pick first, then the algorithm's fall-backs. The proxy
// and `usher simulate` both drive it; nothing in it does I/O or reads a clock.
#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string_view>

#include "balance/live.h"
#include "balance/locality.h"
#include "balance/picker.h"
#include "balance/snapshot.h"
#include "base/expected.h"

namespace usher::balance {

// One request's walk through the candidates: its pick key and the backends it has tried.
class Candidates {
 public:
  static constexpr size_t kMaxTried = 16;

  explicit Candidates(PickInput input) : input_(input) {}

  const PickInput& input() const { return input_; }
  std::span<const uint32_t> tried() const { return {tried_.data(), count_}; }
  // A backend the request went to without asking (a sticky client's own) counts as tried.
  void add_tried(uint32_t backend) {
    if (count_ < kMaxTried) tried_[count_++] = backend;
  }

 private:
  PickInput input_;
  std::array<uint32_t, kMaxTried> tried_{};
  uint32_t count_ = 0;
};

class Balancer {
 public:
  // Fails on an unknown algorithm or an empty snapshot.
  static Expected<std::unique_ptr<Balancer>> build(std::string_view algorithm,
                                                   BackendSnapshot snapshot,
                                                   const Options& options);

  const BackendSnapshot& snapshot() const { return snapshot_; }
  const Picker& picker() const { return *picker_; }
  KeySource key_source() const { return key_source_; }
  // A locality-aware pool's tiers now (weights, healthy weights, shares); nullopt otherwise.
  // Any thread.
  std::optional<TierLoads> tier_loads(const LiveState& live) const {
    if (!tiered_) return std::nullopt;
    return tiered_->loads(live);
  }

  // Any thread: a request's candidates. `request_hash` is the hash of the request's key (used by
  // the hashing algorithms), `random` a fresh random number (used by the random ones); the
  // others take the next ticket.
  Candidates candidates(uint64_t request_hash, uint64_t random, uint64_t now_ms) const {
    uint64_t key = request_hash;
    if (key_source_ == KeySource::kTicket) key = ticket_.fetch_add(1, std::memory_order_relaxed);
    if (key_source_ == KeySource::kRandom) key = random;
    return Candidates({key, now_ms});
  }

  // The next backend to try (the pick, then fall-backs), recorded as tried; kNoBackend when no
  // usable backend is left.
  uint32_t next(Candidates& candidates, const LiveState& live) const;

 private:
  Balancer(BackendSnapshot snapshot, std::unique_ptr<Picker> picker, KeySource key)
      : snapshot_(std::move(snapshot)),
        picker_(std::move(picker)),
        tiered_(dynamic_cast<const TieredPicker*>(picker_.get())),
        key_source_(key) {}

  BackendSnapshot snapshot_;
  std::unique_ptr<Picker> picker_;
  const TieredPicker* tiered_;  // picker_, when locality-aware
  KeySource key_source_;
  alignas(64) mutable std::atomic<uint64_t> ticket_{0};  // shared by every worker
};

}  // namespace usher::balance
