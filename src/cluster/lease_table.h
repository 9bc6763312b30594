#pragma once
// One worker's share of a cluster-wide rate limit. The limit itself is GCRA in Redis
// (kLeaseScript, shared_limit.h); a worker asks it for a small batch of allowance for a key at a
// time and spends the batch locally, so that most requests cost no Redis round trip. A key whose
// ask was refused stays refused here until Redis said the next request would be allowed, so a flood
// of refused requests costs one round trip per retry interval, not one per request.
//
// What leasing costs in accuracy, for N workers in all instances: a batch is debited in Redis
// when granted, so allowance only ever moves from later to earlier; a batch not spent before
// its lease ends is given back with the key's next ask (or lost, if the key is never asked for
// again, which lets fewer requests through, never more). Over any window a key gets at most
// burst + window x rate + N x batch, and batch is at most burst / 2 and 100 ms of the rate.
//
// Pure: no I/O and no clock (times are arguments, in µs of one steady clock). Worker thread only.
#include <cstddef>
#include <cstdint>
#include <unordered_map>
#include <vector>

namespace usher::cluster {

struct LeasePolicy {
  LeasePolicy(double per_second, uint32_t burst);
  uint64_t interval_us;  // T = 1/rate, rounded up
  uint32_t burst;
  uint32_t batch;     // asked for at a time
  uint64_t lease_us;  // how long a batch may be spent
};

// A coroutine waiting for a key's answer; the worker wakes it (LeaseTable is not the waker).
struct LeaseWaiter {
  virtual void wake() = 0;

 protected:
  ~LeaseWaiter() = default;
};

// What the table asks Redis for one key: `want` requests' allowance, after giving back `give_back`
// unspent from an ended lease.
struct LeaseAsk {
  uint64_t key = 0;
  uint32_t want = 0;
  uint32_t give_back = 0;
};

// Redis's answer: `granted` (0..want), and when nothing was granted, how long until one request
// would be.
struct LeaseAnswer {
  uint64_t key = 0;
  uint32_t granted = 0;
  uint64_t wait_us = 0;
};

class LeaseTable {
 public:
  enum class Verdict : uint8_t {
    kAllow,   // spent one request of the key's lease
    kRefuse,  // Redis refused the key until `retry_after_us`
    kAsk,     // nothing known: send `ask`, then wait for the answer
    kWait,    // an ask is on its way: wait for the answer
    kFull,    // the table is full of keys in use: decide without the cluster
  };
  struct Decision {
    Verdict verdict;
    uint64_t retry_after_us = 0;
    LeaseAsk ask{};
  };

  LeaseTable(LeasePolicy policy, size_t max_keys);

  Decision take(uint64_t key, uint64_t now_us);
  // What take() would decide, changing nothing (but forgetting idle keys when the table is full).
  Verdict peek(uint64_t key, uint64_t now_us);
  // The answer to the key's ask; returns the waiters to wake (the key is no longer asking).
  std::vector<LeaseWaiter*> answer(const LeaseAnswer& answer, uint64_t now_us);
  // The ask will get no answer (Redis is unreachable, the ask could not be sent): the key asks
  // afresh next time, and its waiters are returned to wake.
  std::vector<LeaseWaiter*> abandon(uint64_t key);

  void add_waiter(uint64_t key, LeaseWaiter& waiter);
  void remove_waiter(uint64_t key, LeaseWaiter& waiter);

  const LeasePolicy& policy() const { return policy_; }
  size_t size() const { return entries_.size(); }

 private:
  struct Entry {
    uint32_t tokens = 0;
    uint64_t expires_us = 0;
    uint64_t refused_until_us = 0;
    bool asking = false;
    std::vector<LeaseWaiter*> waiters;
  };
  Entry* find_or_make(uint64_t key, uint64_t now_us);
  void sweep(uint64_t now_us);

  LeasePolicy policy_;
  size_t max_keys_;
  std::unordered_map<uint64_t, Entry> entries_;
  uint64_t swept_us_ = 0;  // a full table is swept at most once a millisecond
};

}  // namespace usher::cluster
