#pragma once
// Idle keep-alive connections to backends, per worker, reused across client connections.
// Thread rule: owned by one worker; never shared.
#include <cstdint>
#include <memory>
#include <vector>

#include "net/socket.h"
#include "proxy/l7/stream.h"
#include "tls/client.h"

namespace usher::proxy::l7 {

struct UpstreamConn {
  UpstreamConn(net::Reactor& reactor, int fd, uint32_t backend_id)
      : socket(reactor, fd), backend_id(backend_id) {}
  Side side() { return {socket, tls.get(), channel.get()}; }

  net::Socket socket;
  uint32_t backend_id;
  // To a TLS pool: the stream, and the context it came from, kept as long as the stream may
  // still report a session to it (a reload may have replaced the context meanwhile).
  std::shared_ptr<const tls::ClientContext> tls_context;
  std::unique_ptr<tls::Stream> tls;
  // A stream on a multiplexed connection (proxy/h2/backend.h) instead of a socket of its own.
  std::unique_ptr<MessageChannel> channel;
};

class UpstreamPool {
 public:
  explicit UpstreamPool(size_t max_idle_per_backend);

  // Makes room for a backend's idle connections ahead of its first request (a generation's
  // backends are tracked when the worker takes the generation, so requests allocate nothing).
  void track(uint32_t backend_id);
  // The most recently parked live connection to the backend, or null.
  std::unique_ptr<UpstreamConn> take(uint32_t backend_id);
  void give_back(std::unique_ptr<UpstreamConn> conn);
  // Closes the idle connections of every backend `keep` says no to.
  template <typename Keep>
  void close_unless(Keep keep) {
    for (uint32_t id = 0; id < idle_.size(); ++id) {
      if (!idle_[id].empty() && !keep(id)) idle_[id].clear();
    }
  }
  void clear();

 private:
  std::vector<std::vector<std::unique_ptr<UpstreamConn>>> idle_;
  size_t max_idle_per_backend_;
};

}  // namespace usher::proxy::l7
