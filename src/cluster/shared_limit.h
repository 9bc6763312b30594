#pragma once
// A rate limit that several usher instances enforce as one, through GCRA in Redis: the key in
// Redis holds the key's theoretical arrival time, and each worker of each instance leases small
// batches of allowance from it (lease_table.h). One SharedLimit per route or listener limit,
// shared by the workers of a generation and carried to the next while the limit stays the same.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "cluster/lease_table.h"

namespace usher::cluster {

class SharedLimit {
 public:
  static constexpr size_t kMaxWorkers = 1024;  // config: workers <= 1024
  static constexpr size_t kKeysPerWorker = 4096;

  // `key_base`: the Redis key before the request key's hash ("usher:rl:web/login:").
  SharedLimit(std::string key_base, double per_second, uint32_t burst);

  // Worker `worker`'s own table, made on first use; only that worker's thread may call this.
  LeaseTable& table(size_t worker);
  std::string redis_key(uint64_t key) const;
  const LeasePolicy& policy() const { return policy_; }

 private:
  std::string key_base_;
  LeasePolicy policy_;
  std::vector<std::unique_ptr<LeaseTable>> tables_;  // by worker; slot i only touched by worker i
};

// The Lua script that runs GCRA on a key for a batch; its arguments, in order: the emission
// interval in µs, the burst, how many requests are wanted, how many unspent ones come back.
// Replies { granted, µs until one request would be allowed when none was }.
extern const char kLeaseScript[];

}  // namespace usher::cluster
