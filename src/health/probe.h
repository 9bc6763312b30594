#pragma once
// One active check of one backend: TCP (the connect succeeds), HTTP (GET path answers an
// expected status), UDP (a datagram is answered with the expected bytes) or DNS (a query is
// answered). To a TLS pool, a TCP check is the TLS handshake and an HTTP check speaks through
// TLS. Runs on the health checker's reactor; the timeout bounds the whole check.
#include <string>

#include "base/address.h"
#include "config/config.h"
#include "net/reactor.h"
#include "net/task.h"
#include "tls/client.h"

namespace usher::health {

struct ProbeResult {
  bool ok = false;
  std::string detail;  // "200", "status 500", "connect: Connection refused", "timeout"
};

// A TLS pool's context on the checker's thread, and the backend's slot in its pool.
struct ProbeTls {
  const tls::ClientContext* context = nullptr;  // null: plain TCP
  uint32_t slot = 0;
};

net::Task<ProbeResult> probe(net::Reactor& reactor, const Address& address,
                             const config::HealthCheck& check, const std::string& request,
                             ProbeTls tls);

// The udp and dns checks (probe_udp.cc), which probe() hands them to; `deadline` ends them.
net::Task<ProbeResult> probe_datagram(net::Reactor& reactor, const Address& address,
                                      const config::HealthCheck& check, uint64_t deadline);

// The request an HTTP check sends, built once per backend.
std::string health_request(const config::HealthCheck& check, const Address& address);

}  // namespace usher::health
