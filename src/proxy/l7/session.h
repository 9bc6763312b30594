#pragma once
// Internal to the HTTP/1 session: one client connection and what is kept of each request.
#include <arpa/inet.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string_view>

#include "balance/picker.h"
#include "base/ip_range.h"
#include "cluster/shared_limit.h"
#include "codec/http1/message.h"
#include "geo/database.h"
#include "net/buffer_pool.h"
#include "net/socket.h"
#include "proxy/l7/head_writer.h"
#include "proxy/l7/pick_trace.h"
#include "proxy/l7/request_trace.h"
#include "proxy/l7/stream.h"
#include "proxy/listener_routes.h"
#include "proxy/worker.h"
#include "tls/context.h"

namespace usher::proxy::l7 {

struct UpstreamConn;
using http1::Framing;

// What happened to the request in flight, for metrics and the access log.
struct RequestOutcome {
  std::chrono::steady_clock::time_point started;
  int status = 0;  // what the client was sent; 0: nothing
  uint32_t backend = balance::kNoBackend;
  uint32_t retries = 0;
  uint64_t bytes_received = 0;  // from the client: head and body
  uint64_t bytes_sent = 0;      // to the client
  double upstream_seconds = 0;  // to the response head of the backend that answered
  uint32_t queue_ms = 0;        // waited in the pool's queue for a backend with room
  // The protection that answered or ended the request, for the access log: "rate_limit",
  // "denied", "queue_full", "queue_timeout", "header_timeout", "body_rate".
  const char* guard = nullptr;
  std::string_view request_id;  // once known: echoed in usher's error responses too
  PickTrace pick;               // why its backend (recorded when something will say it)
  // In the request's frame, while it is served.
  RequestTrace* trace = nullptr;
};

// What a request waits for from the cluster's Redis, and how long it has waited.
struct LeaseWaits {
  std::shared_ptr<cluster::SharedLimit> limit;  // null once the answer came
  uint64_t key = 0;
  uint8_t count = 0;         // waits so far
  uint64_t deadline_ms = 0;  // the end of all of them
};

struct Client {
  Client(Worker& w, int fd, Endpoint& e) : worker(w), endpoint(e), socket(w.reactor(), fd) {
    link.client = &socket;
    link.endpoint = &e;
  }

  uint64_t after(Millis timeout) const { return worker.reactor().now_ms() + timeout.count(); }
  // A wait for the backend: `timeout` from now, and never past the request's own deadline.
  uint64_t upstream_deadline(Millis timeout) const {
    const uint64_t by_timeout = after(timeout);
    return deadline_ms && deadline_ms < by_timeout ? deadline_ms : by_timeout;
  }
  std::string_view unread() const { return {in.begin(), in.size()}; }
  std::string_view ip() const { return {ip_text, ip_length}; }
  // The configuration of the request in flight.
  const config::Config& config() const { return gen->config(); }
  Side side() { return {socket, tls.get(), channel}; }
  // Over TLS, directly or through the HTTP/2 connection that carries this request.
  bool secure() const { return tls != nullptr || channel_secure; }

  Worker& worker;
  Endpoint& endpoint;
  GenerationRef gen;                       // held from a request's first byte to its end
  const ListenerRoutes* routes = nullptr;  // the listener as the request's generation has it
  uint64_t routes_generation = 0;          // whose trusted_proxies decided trusted_peer
  net::Socket socket;
  // HTTPS: the certificates it was accepted with (SNI picks among them during the handshake).
  std::shared_ptr<const tls::ServerContext> tls_context;
  std::unique_ptr<tls::Stream> tls;  // after socket: destroyed before it
  TlsFacts tls_facts;                // views into tls
  std::string tls_client_subject;
  net::Buffer in;  // unconsumed bytes from the client; released whenever it runs empty
  SessionLink link;
  char ip_text[INET6_ADDRSTRLEN] = {};
  uint8_t ip_length = 0;
  IpBytes peer;
  bool trusted_peer = false;  // in the listener's trusted_proxies
  bool linger = false;        // an error response was sent: close gently
  RequestOutcome current;     // requests on one connection are handled one at a time
  // An HTTP/2 stream's request: no socket of its own, its bytes go through the channel.
  MessageChannel* channel = nullptr;
  bool channel_secure = false;
  const char* protocol = "HTTP/1.1";  // what the client speaks, for the access log and metrics
  // The backend connection of the try under way, and whether the client gave up the request
  // (an HTTP/2 stream reset): its backend request is then cancelled at once, never retried.
  UpstreamConn* upstream = nullptr;
  bool cancelled = false;
  uint64_t deadline_ms = 0;   // the request's own (gRPC's grpc-timeout); 0: none
  bool own_response = false;  // the response under way is usher's own (send_status)
  // A request waiting for Redis's answers about its cluster-wide rate limits (request_guards.h);
  // made only then, so that an idle connection carries one pointer for it.
  std::unique_ptr<LeaseWaits> lease;
};

// The client gave up its request: the backend request under way ends at once (its socket's
// operations are cancelled, or its HTTP/2 stream reset), and no retry follows (exchange.cc).
void cancel_upstream(Client& c);

// A short text kept with the request after its head buffer is gone.
template <size_t N>
struct ShortText {
  char data[N];
  uint8_t size = 0;
  std::string_view view() const { return {data, size}; }
  void assign(std::string_view text) {
    size = static_cast<uint8_t>(std::min(text.size(), N));
    std::copy_n(text.data(), size, data);
  }
};

constexpr size_t kMaxRequestIdLength = 128;

// Copies of the head's fields the access log prints, taken only while it is on: the head's
// bytes are gone by the time the line is written.
struct LoggedFields {
  enum Field : uint8_t { kMethod, kHost, kTarget, kReferer, kUserAgent, kCount };
  net::Buffer text;  // the fields back to back
  uint32_t lengths[kCount] = {};

  std::string_view get(Field field) const {
    size_t offset = 0;
    for (int i = 0; i < field; ++i) offset += lengths[i];
    return text ? std::string_view(text.begin() + offset, lengths[field]) : std::string_view();
  }
};

// What outlives the request head once it has been serialised for the backend.
struct RequestInfo {
  Framing::Kind body_kind = Framing::Kind::kNone;
  uint64_t body_length = 0;
  http1::Method method = http1::Method::kOther;
  bool http10 = false;
  bool keep_alive = true;
  bool expect_continue = false;
  bool upgrade = false;
  bool websocket_upgrade = false;
  uint64_t key_hash = 0;  // for hash-based pools
  const RouteTarget* target = nullptr;
  bool local = false;  // the head buffer holds usher's own complete response, not a request
  int local_status = 0;
  uint32_t sticky_backend = balance::kNoBackend;  // named by the request's sticky cookie
  bool https_client = false;  // over TLS, or a trusted proxy says the client came over HTTPS
  TlsFacts tls;
  ShortText<INET6_ADDRSTRLEN> client_ip;  // the real client, after trusted proxies
  geo::Locator client;                    // its address, and its place once something asks
  ShortText<kMaxRequestIdLength> request_id;
  LoggedFields logged;

  bool marked_idempotent = false;  // carries an Idempotency-Key: the client allows a replay

  bool idempotent() const {
    using http1::Method;
    return marked_idempotent || method == Method::kGet || method == Method::kHead ||
           method == Method::kOptions || method == Method::kPut || method == Method::kDelete ||
           method == Method::kTrace;
  }
  bool replayable() const {
    return body_kind == Framing::Kind::kNone ||
           (body_kind == Framing::Kind::kLength && body_length == 0);
  }
};

inline http1::HeadLimits head_limits(const config::Config& config) {
  return {config.limits.max_request_line, config.limits.max_header_bytes,
          config.limits.max_headers};
}

// Whether the listener's trusted_proxies include this address.
inline bool trusted(const ListenerRoutes& routes, const IpBytes& ip) {
  for (const IpRange& range : routes.config.trusted_proxies) {
    if (range.contains(ip)) return true;
  }
  return false;
}

}  // namespace usher::proxy::l7
