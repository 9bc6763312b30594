#pragma once
// One backend's health as a cluster shares it (cluster.share_health): one instance at a time
// holds the backend's probe lease in Redis and publishes what its checks conclude; the others
// take that verdict instead of probing, so a backend's probe load does not grow with the number
// of balancers. Filled by the cluster thread (src/cluster/service.h), read and written by the
// check loop (checker.h). Without Redis, every instance probes on its own (kProbeHere).
#include <atomic>
#include <cstdint>

namespace usher::health {

struct SharedHealth {
  enum Lease : uint8_t { kProbeHere, kProbedElsewhere };
  std::atomic<uint8_t> lease{kProbeHere};
  std::atomic<int8_t> published{-1};  // the lease holder's verdict: 1 up, 0 down, -1 none
  std::atomic<int8_t> ours{-1};       // this instance's own, once it has probed
};

}  // namespace usher::health
