#pragma once
// The backend side of an exchange: connecting, sending the request (head, then the body streamed
// from the client with back-pressure), reading the response head, and relaying the response
// body or an upgraded tunnel to the client. Worker thread only.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "codec/http1/message.h"
#include "net/buffer_pool.h"
#include "net/socket.h"
#include "net/task.h"
#include "proxy/l7/failure.h"
#include "proxy/l7/head_writer.h"
#include "proxy/l7/request_body.h"
#include "proxy/l7/session.h"
#include "proxy/l7/stream.h"
#include "proxy/l7/upstream_pool.h"
#include "proxy/pool_state.h"

namespace usher::proxy::l7 {

struct ResponseInfo {
  int status = 0;
  http1::Framing framing;
  bool upstream_keep_alive = false;
  bool client_keep_alive = false;
  bool dechunk = false;
};

// A new connection to the backend, or null with `error` set (-errno).
net::Task<std::unique_ptr<UpstreamConn>> connect_upstream(Worker& w, uint32_t backend_id,
                                                          const Address& address, Millis timeout,
                                                          long& error);

// Why the TLS handshake with a backend failed: kNone when it succeeded.
struct Handshake {
  tls::HandshakeFailure failure = tls::HandshakeFailure::kNone;
  std::string reason;  // for the log: the verification error or the TLS error
};

// Starts TLS on a connected `conn` to the pool's backend `slot`, within `timeout`, resuming the
// backend's last session when there is one.
net::Task<Handshake> secure_upstream(Worker& w, UpstreamConn& conn,
                                     std::shared_ptr<const tls::ClientContext> context,
                                     uint32_t slot, const Address& address, Millis timeout);

// A new connection to backend `index` of `pool`, over TLS when the pool says so; null with
// `failure` set (a refused or timed-out connect or handshake: nothing was sent).
net::Task<std::unique_ptr<UpstreamConn>> open_upstream(Client& c, PoolState& pool, uint32_t index,
                                                       Millis timeout, Failure& failure);

// Sends the serialised head and streams the request body from the client. The backend, like a
// client, must take bytes within the body timeout (client_body) at every write: a slow reader
// gets the upload as long as it keeps reading, and the response timeout starts only once the
// request is sent. An upstream failure comes as kTimeout (it stopped reading) or kReset, not
// retry-safe: the caller knows whether the request may be replayed.
// `buffered`: the body, or its start, already read (buffer_request); sent after the head.
net::Task<Failure> send_request(Client& c, Side upstream, const RequestInfo& info,
                                const net::Buffer& head, const BufferedBody* buffered);

// Reads the response head (forwarding interim 1xx responses) and serialises the final head for
// the client into `out`. The backend closing before any byte comes as kStale (a reused
// connection's idle timeout looks exactly like this), not retry-safe.
net::Task<Failure> read_response_head(Client& c, Side upstream, net::Buffer& in,
                                      const RequestInfo& info, const ResponseRewrite& edits,
                                      Millis timeout, ResponseInfo& response, net::Buffer& out,
                                      uint64_t& upstream_bytes);

// The body when all of it came with the head and goes out as it came (no dechunking): the
// caller sends it with the head in one writev from its own frame. A coroutine for it would cost
// a frame per response, and how many such frames a loop turn holds at once (they wait for the
// turn's writes) follows the traffic's bursts, so the frame pool would keep meeting new peaks.
std::optional<std::string_view> body_in_buffer(const ResponseInfo& response, const net::Buffer& in);

// How relaying a response body ended.
enum class Relayed : uint8_t {
  kWhole,    // the body ended as framed
  kCut,      // it broke after bytes reached the client: only a reset can tell the client now
  kRefused,  // malformed before any byte left for the client, which can still get a 502
};

// Streams the response body to the client; the head goes out with the first body bytes, or
// before the first wait for more.
net::Task<Relayed> relay_response_body(Client& c, Side upstream, net::Buffer& in,
                                       const ResponseInfo& response, const net::Buffer& head,
                                       Millis upstream_timeout, uint64_t& upstream_bytes);

// After a 101: leftovers cross over, then bytes flow both ways until either side ends. A
// WebSocket tunnel is known to the worker, whose drain ends it with Close frames.
net::Task<void> run_tunnel(Client& c, Side upstream, net::Buffer& upstream_in,
                           const net::Buffer& head, bool websocket);

}  // namespace usher::proxy::l7
