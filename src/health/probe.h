#pragma once
// One active check of one backend: TCP (the connect succeeds) or HTTP (GET path answers an
// expected status). Runs on the health checker's reactor; the timeout bounds the whole check.
#include <string>

#include "base/address.h"
#include "config/config.h"
#include "net/reactor.h"
#include "net/task.h"

namespace usher::health {

struct ProbeResult {
  bool ok = false;
  std::string detail;  // "200", "status 500", "connect: Connection refused", "timeout"
};

net::Task<ProbeResult> probe(net::Reactor& reactor, const Address& address,
                             const config::HealthCheck& check, const std::string& request);

// The request an HTTP check sends, built once per backend.
std::string health_request(const config::HealthCheck& check, const Address& address);

}  // namespace usher::health
