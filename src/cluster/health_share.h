#pragma once
// Shared health checks (cluster.share_health): each backend's probe lease in Redis, renewed by
// the instance that holds it, which also publishes its checks' verdict; every other instance
// reads the verdict into the backend's SharedHealth (src/health/shared.h) and does not probe.
// One pipelined round trip per sync for all backends. Cluster thread only.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "cluster/redis_link.h"
#include "health/shared.h"

namespace usher::cluster {

struct SharedBackend {
  std::string name;  // "POOL/ADDRESS": the same in every instance with the same configuration
  std::shared_ptr<health::SharedHealth> health;
};

class HealthShare {
 public:
  // How long a lease outlives its last renewal: the time another instance waits before it takes
  // over the probes of an instance that died.
  static constexpr uint64_t kLeaseMs = 2000;
  static constexpr uint64_t kSyncMs = 500;

  explicit HealthShare(std::string instance);
  void set(std::vector<SharedBackend> backends) { backends_ = std::move(backends); }
  bool empty() const { return backends_.empty(); }
  // This process's name in the leases.
  const std::string& instance() const { return instance_; }
  // False after an I/O error (the link is then closed).
  bool sync(RedisLink& link, const std::string& script_sha, const std::string& prefix);
  // Redis is unreachable: every instance probes on its own.
  void probe_everywhere();

 private:
  std::string instance_;
  std::vector<SharedBackend> backends_;
};

// KEYS: the lease, the verdict. ARGV: this instance, the lease in ms, its verdict ("1", "0" or
// "" before its first probe). Replies { 1 when the lease is this instance's, the verdict }.
extern const char kHealthScript[];

}  // namespace usher::cluster
