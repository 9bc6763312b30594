#pragma once
// What the admin API asks of the running process: the generation it serves, and a reload.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "proxy/generation.h"
#include "tls/context.h"

namespace usher::admin {

class Control {
 public:
  virtual ~Control() = default;

  // Any thread: the generation new requests get.
  virtual std::shared_ptr<const proxy::Generation> generation() const = 0;
  // Any thread: re-reads the configuration file and serves it. Empty when it was applied;
  // otherwise every problem found (FILE:LINE:COL: message) and nothing changed.
  virtual std::vector<std::string> reload() = 0;

  struct ReloadCounts {
    uint64_t success = 0;
    uint64_t failure = 0;
  };
  virtual ReloadCounts reload_counts() const = 0;

  // Any thread: by pool, the discovery answers (DNS) and lists (files) that could not be used.
  virtual std::vector<std::pair<std::string, uint64_t>> discovery_failures() const = 0;

  // Any thread: what became of finished spans (src/trace): sent to the collector, or dropped
  // (no room in a worker's ring, or a batch the collector did not take), and failed exports.
  struct TraceCounts {
    uint64_t exported = 0;
    uint64_t dropped = 0;
    uint64_t export_failures = 0;
  };
  virtual TraceCounts trace_counts() const = 0;

  // Any thread: the shared Redis of a cluster (src/cluster): whether one is configured, whether
  // it is reachable now, round trips made and lease answers.
  struct ClusterCounts {
    bool configured = false;
    bool redis_up = false;
    uint64_t round_trips = 0;
    uint64_t leases_granted = 0;
    uint64_t leases_refused = 0;
  };
  virtual ClusterCounts cluster_counts() const = 0;

  // Any thread: the certificates the serving generation's TLS listeners present.
  virtual std::vector<tls::CertificateInfo> certificates() const = 0;
};

}  // namespace usher::admin
