#pragma once
// A layer-4 connection's backend: the pool's candidates tried in order until one accepts the
// connection, each counted active while it is held. Worker thread only.
#include <cstdint>
#include <memory>
#include <string>

#include "base/address.h"
#include "base/duration.h"
#include "config/config.h"
#include "net/socket.h"
#include "net/task.h"
#include "proxy/pool_state.h"

namespace usher::proxy {
class Worker;
}

namespace usher::proxy::l4 {

struct BackendConnection {
  std::unique_ptr<net::Socket> socket;  // null: no candidate could be reached
  uint32_t index = 0;                   // the backend's slot, counted active until released
  double connect_seconds = 0;
};

// Tries up to every usable backend (a refused or timed-out connect counts against it in the
// passive checks and the next candidate is tried); `key_hash` is the client's for the hashing
// algorithms.
net::Task<BackendConnection> connect_backend(Worker& w, PoolState& pool, uint64_t key_hash,
                                             Millis timeout);

// Ends the connection's count on backend `index`.
void release_backend(PoolState& pool, uint32_t index);

// The PROXY protocol header a pool wants written first, for a client at `source` that reached
// `destination`; empty when the pool wants none. v2 carries `alpn` and `authority` as TLVs
// when they are known.
std::string proxy_header_for(config::ProxyProtocolVersion version, const Address& source,
                             const Address& destination, std::string_view alpn = {},
                             std::string_view authority = {});

}  // namespace usher::proxy::l4
