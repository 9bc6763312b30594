#include "proxy/l4/backend_connect.h"

#include <cerrno>
#include <chrono>

#include "codec/l4/proxy_protocol.h"
#include "proxy/pool_queue.h"
#include "proxy/worker.h"

namespace usher::proxy::l4 {

net::Task<BackendConnection> connect_backend(Worker& w, PoolState& pool, uint64_t key_hash,
                                             Millis timeout) {
  BackendConnection out;
  balance::Candidates candidates =
      pool.balancer().candidates(key_hash, w.random(), w.reactor().now_ms());
  for (size_t tries = 0; tries < balance::Candidates::kMaxTried; ++tries) {
    const uint32_t index = take_backend(pool, candidates);
    if (index == balance::kNoBackend) break;
    const Address& address = pool.slot(index).address;
    const auto started = std::chrono::steady_clock::now();
    const int fd = net::Socket::open_tcp(address);
    long error = fd < 0 ? -errno : 0;
    auto socket = fd < 0 ? nullptr : std::make_unique<net::Socket>(w.reactor(), fd);
    if (socket) error = co_await socket->connect(address, w.reactor().now_ms() + timeout.count());
    const uint64_t now = w.reactor().now_ms();
    pool.record_outcome(index, error != 0, now);
    if (error == 0) {
      out.connect_seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
      // The time to connect is what a layer-4 balancer can see of a backend's latency.
      pool.live.observe_latency(index, out.connect_seconds * 1e3, now,
                                pool.options.latency_decay_ms);
      out.socket = std::move(socket);
      out.index = index;
      co_return out;
    }
    const auto kind = static_cast<size_t>(metrics::UpstreamError::kConnect);
    w.metrics().backends[pool.backend_id(index)].errors[kind].add();
    pool.live.end(index);
  }
  co_return out;
}

void release_backend(PoolState& pool, uint32_t index) {
  pool.live.end(index);
}

std::string proxy_header_for(config::ProxyProtocolVersion version, const Address& source,
                             const Address& destination, std::string_view alpn,
                             std::string_view authority) {
  switch (version) {
    case config::ProxyProtocolVersion::kV1:
      return usher::l4::proxy_v1(source, destination);
    case config::ProxyProtocolVersion::kV2:
      return usher::l4::proxy_v2(source, destination, usher::l4::Transport::kStream, alpn,
                                 authority);
    case config::ProxyProtocolVersion::kOff:
      break;
  }
  return {};
}

}  // namespace usher::proxy::l4
