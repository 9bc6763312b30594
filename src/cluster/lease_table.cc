#include "cluster/lease_table.h"

#include <algorithm>
#include <cmath>
#include <utility>

namespace usher::cluster {

namespace {

// A batch is at most this much of the rate: the longer a lease, the longer unspent allowance
// sits where the key's next request may not come.
constexpr double kBatchSeconds = 0.1;
// A lease lasts as long as its batch takes at the full rate, and at least this: a short lease
// for a fast rate would end before a busy worker's next loop turn.
constexpr uint64_t kMinLeaseUs = 50'000;

}  // namespace

LeasePolicy::LeasePolicy(double per_second, uint32_t burst_)
    : burst(std::max<uint32_t>(burst_, 1)) {
  interval_us = static_cast<uint64_t>(std::max(1.0, std::ceil(1e6 / per_second)));
  const double by_rate = std::floor(per_second * kBatchSeconds);
  batch = static_cast<uint32_t>(std::clamp(by_rate, 1.0, std::max(1.0, burst / 2.0)));
  lease_us = std::max(kMinLeaseUs, batch * interval_us);
}

LeaseTable::LeaseTable(LeasePolicy policy, size_t max_keys)
    : policy_(policy), max_keys_(std::max<size_t>(max_keys, 1)) {}

LeaseTable::Decision LeaseTable::take(uint64_t key, uint64_t now_us) {
  Entry* e = find_or_make(key, now_us);
  if (!e) return {.verdict = Verdict::kFull};
  if (e->tokens > 0 && now_us < e->expires_us) {
    --e->tokens;
    return {.verdict = Verdict::kAllow};
  }
  if (now_us < e->refused_until_us) {
    return {.verdict = Verdict::kRefuse, .retry_after_us = e->refused_until_us - now_us};
  }
  if (e->asking) return {.verdict = Verdict::kWait};
  e->asking = true;
  // What an ended lease left unspent goes back to the other instances with this ask.
  const uint32_t give_back = std::exchange(e->tokens, 0);
  return {.verdict = Verdict::kAsk,
          .ask = {.key = key, .want = policy_.batch, .give_back = give_back}};
}

LeaseTable::Verdict LeaseTable::peek(uint64_t key, uint64_t now_us) {
  auto it = entries_.find(key);
  if (it == entries_.end()) {
    sweep(now_us);
    return entries_.size() >= max_keys_ ? Verdict::kFull : Verdict::kAsk;
  }
  const Entry& e = it->second;
  if (e.tokens > 0 && now_us < e.expires_us) return Verdict::kAllow;
  if (now_us < e.refused_until_us) return Verdict::kRefuse;
  return e.asking ? Verdict::kWait : Verdict::kAsk;
}

std::vector<LeaseWaiter*> LeaseTable::answer(const LeaseAnswer& a, uint64_t now_us) {
  auto it = entries_.find(a.key);
  if (it == entries_.end()) return {};
  Entry& e = it->second;
  e.asking = false;
  if (a.granted > 0) {
    e.tokens = a.granted;
    e.expires_us = now_us + policy_.lease_us;
    e.refused_until_us = 0;
  } else {
    e.tokens = 0;
    e.refused_until_us = now_us + std::max<uint64_t>(a.wait_us, 1);
  }
  return std::exchange(e.waiters, {});
}

std::vector<LeaseWaiter*> LeaseTable::abandon(uint64_t key) {
  auto it = entries_.find(key);
  if (it == entries_.end()) return {};
  it->second.asking = false;
  return std::exchange(it->second.waiters, {});
}

void LeaseTable::add_waiter(uint64_t key, LeaseWaiter& waiter) {
  if (auto it = entries_.find(key); it != entries_.end()) it->second.waiters.push_back(&waiter);
}

void LeaseTable::remove_waiter(uint64_t key, LeaseWaiter& waiter) {
  auto it = entries_.find(key);
  if (it == entries_.end()) return;
  std::erase(it->second.waiters, &waiter);
}

LeaseTable::Entry* LeaseTable::find_or_make(uint64_t key, uint64_t now_us) {
  if (auto it = entries_.find(key); it != entries_.end()) return &it->second;
  sweep(now_us);
  if (entries_.size() >= max_keys_) return nullptr;
  return &entries_[key];
}

// When the table is full, keys that hold nothing live (no lease, no refusal, no ask) are forgotten;
// their unspent allowance, if any, is lost to the cluster, which only ever lets fewer requests
// through.
void LeaseTable::sweep(uint64_t now_us) {
  // A flood of new keys into a table full of live ones costs one pass a millisecond, not one
  // per request.
  constexpr uint64_t kSweepEveryUs = 1000;
  if (entries_.size() < max_keys_ || now_us - swept_us_ < kSweepEveryUs) return;
  swept_us_ = now_us;
  std::erase_if(entries_, [now_us](const auto& item) {
    const Entry& e = item.second;
    return !e.asking && e.waiters.empty() && now_us >= e.refused_until_us &&
           (e.tokens == 0 || now_us >= e.expires_us);
  });
}

}  // namespace usher::cluster
