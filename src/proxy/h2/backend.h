#pragma once
// HTTP/2 toward the backends of `protocol: h2` pools (gRPC servers speak nothing else). Each
// worker keeps up to h2_connections connections per backend and multiplexes requests on them,
// as many per connection as the backend's SETTINGS allow. The L7 path writes each request as
// HTTP/1.1 into a stream (a MessageChannel) and reads the response from it as HTTP/1.1, exactly
// as over a socket: the translation is the stream's. Worker thread only.
#include <cstdint>
#include <memory>
#include <vector>

#include "base/duration.h"
#include "net/task.h"

namespace usher::proxy {
class Worker;
struct PoolState;
}  // namespace usher::proxy

namespace usher::proxy::l7 {
struct Client;
struct Failure;
struct UpstreamConn;
}  // namespace usher::proxy::l7

namespace usher::proxy::h2 {

class BackendSession;

class BackendSessions {
 public:
  explicit BackendSessions(Worker& worker);
  BackendSessions(const BackendSessions&) = delete;
  BackendSessions& operator=(const BackendSessions&) = delete;
  ~BackendSessions();

  // A new stream to backend `index` of `pool`, on a connection with room or a new one while the
  // pool's h2_connections allow; null, with `failure` set, when none could be opened.
  net::Task<std::unique_ptr<l7::UpstreamConn>> open_stream(l7::Client& c, PoolState& pool,
                                                           uint32_t index, Millis timeout,
                                                           l7::Failure& failure);
  // Draining: connections without streams close now, the others when their last stream ends.
  void close_idle();
  // Frees the sessions whose connection has ended and that no stream uses any more.
  void sweep();

 private:
  BackendSession* with_room(uint32_t backend_id, uint32_t max_connections);

  Worker& worker_;
  std::vector<std::vector<std::unique_ptr<BackendSession>>> by_backend_;
  std::vector<uint32_t> opening_;  // connections being opened, per backend (count to the cap)
};

}  // namespace usher::proxy::h2
