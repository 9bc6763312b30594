#pragma once
// Pools whose backends are a DNS name's addresses (`discovery: { dns }`). Their first answer is
// asked for when a configuration is loaded (start, `usher check`, reload), waiting for it, so
// that no pool starts empty; afterwards the server's DnsWatch asks again at each TTL.
#include <vector>

#include "config/config.h"
#include "discovery/dns_watch.h"

namespace usher::app {

// Fills the backends of `config`'s DNS pools. A pool that `serving` has under the same name with
// the same question keeps the backends it serves: a reload neither waits for the resolver nor
// loses a pool to one that is down at that moment. Problems at the pool's `discovery` key.
void resolve_dns_pools(config::Config& config, const config::Config* serving,
                       config::Errors& errors);

// The questions of `config`'s DNS pools, in the order of its pools that have one.
std::vector<discovery::DnsName> dns_questions(const config::Config& config);
discovery::DnsOptions dns_options(const config::Config& config);

// An answer as a pool's backends: named by address, weights within what a pool accepts.
std::vector<config::Backend> dns_backends(const std::vector<discovery::Found>& found);

}  // namespace usher::app
