#include "proxy/l7/http_session.h"

#include <arpa/inet.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <utility>

#include "codec/http1/head_parser.h"
#include "proxy/h2/connection.h"
#include "proxy/l7/client_io.h"
#include "proxy/l7/exchange.h"
#include "proxy/l7/failure.h"
#include "proxy/l7/prepare.h"
#include "proxy/l7/request_guards.h"
#include "proxy/l7/request_record.h"
#include "proxy/l7/session.h"
#include "proxy/l7/stream.h"
#include "proxy/proxy_header.h"
#include "proxy/worker.h"

// The connection loop of an HTTP/1 client: wait for a request, read its head, answer it (usher's
// own response or an exchange with a pool), keep what is kept of it, and go on while both sides
// keep the connection alive.
namespace usher::proxy::l7 {

namespace {

using http1::ParseStatus;

void record_peer(Client& c) {
  sockaddr_storage peer{};
  socklen_t len = sizeof peer;
  if (::getpeername(c.socket.fd(), reinterpret_cast<sockaddr*>(&peer), &len) == 0) {
    const auto* address = reinterpret_cast<const sockaddr*>(&peer);
    c.ip_length = static_cast<uint8_t>(format_ip(address, c.ip_text, sizeof c.ip_text));
    c.peer = IpBytes::from_sockaddr(address);
  }
}

// A trusted balancer's PROXY header: its source becomes the client (logs, forwarding headers,
// rate limits and route lists). False when the header was missing, malformed or late.
net::Task<bool> take_proxy_header(Client& c, const config::Listener& listener) {
  const auto header = co_await read_proxy_header(
      c.socket, *listener.proxy_protocol, c.after(c.worker.current().config().timeouts.header));
  if (!header) co_return false;
  if (header->source) {  // else LOCAL: the balancer's own connection, its address stays
    const sockaddr* source = header->source->sockaddr_ptr();
    c.ip_length = static_cast<uint8_t>(format_ip(source, c.ip_text, sizeof c.ip_text));
    c.peer = IpBytes::from_sockaddr(source);
  }
  co_return true;
}

// While usher drains, a keep-alive connection waiting for its next request is closed only after
// this long: its client may have sent that request already, and closing under it would lose it
// (a client that reads the close after writing sees an error, not a retry). Those that do send
// one are answered with Connection: close. HAProxy before 2.4 did the same, and keeps it as
// `option idle-close-on-response` because balancers in front of it lost requests without it.
constexpr uint64_t kDrainIdleGraceMs = 1000;

// Waits between requests holding no buffer; false when the connection should end.
net::Task<bool> await_request_bytes(Client& c, bool first) {
  bool graced = false;  // the drain's cancel of this wait came: the next one is the grace
  while (c.in.empty()) {
    // Idle between requests, the connection holds no generation: a reload meanwhile is what its
    // next request gets.
    c.gen.reset();
    const auto& timeouts = c.worker.current().config().timeouts;
    c.in.release();
    if (!c.tls || !c.tls->buffered()) {
      uint64_t deadline = c.after(first ? timeouts.header : timeouts.idle);
      if (c.worker.draining()) {
        deadline = std::min(deadline, c.worker.reactor().now_ms() + kDrainIdleGraceMs);
      }
      c.link.idle = true;
      long ready = co_await c.socket.readable(deadline);
      c.link.idle = false;
      if (ready == -ECANCELED && c.worker.draining() && !std::exchange(graced, true)) continue;
      if (ready < 0) co_return false;
    }
    c.in = c.worker.buffers().take();
    long n = c.tls ? c.tls->try_read(c.in.tail(), c.in.tail_room())
                   : c.socket.try_read(c.in.tail(), c.in.tail_room());
    if (n == -EAGAIN) continue;
    if (n <= 0) co_return false;
    c.in.commit(static_cast<size_t>(n));
  }
  co_return true;
}

// Reads and parses one request head and prepares what follows (see prepare_request).
net::Task<Failure> read_request_head(Client& c, RequestInfo& info, net::Buffer& out) {
  Worker& w = c.worker;
  const http1::HeadLimits limits = head_limits(c.config());
  const uint64_t deadline = c.after(c.config().timeouts.header);
  size_t scanned = 0;
  while (true) {
    http1::RequestHead head;
    http1::ParseError error;
    ParseStatus status =
        http1::parse_request(c.unread(), limits, w.header_scratch(), scanned, head, error);
    if (status == ParseStatus::kError) co_return Failure::client(error.http_status);
    if (status == ParseStatus::kComplete) {
      const Failure prepared = prepare_request(c, head, info, out);
      if (c.lease && c.lease->limit) {  // a cluster-wide rate limit waits for Redis's answer
        co_await wait_for_lease(c);
        // Parsed again: the worker's header scratch served other requests meanwhile.
        scanned = 0;
        continue;
      }
      c.lease.reset();
      c.current.bytes_received += head.head_bytes;
      c.in.consume(head.head_bytes);
      co_return prepared;
    }
    char* tail = c.in.tail();
    if (c.in.tail_room() == 0) co_return Failure::client(431);
    long n = co_await read_client(c, tail, c.in.tail_room(), deadline);
    if (n == -ETIMEDOUT) {
      c.current.guard = "header_timeout";
      co_return Failure::client(408);
    }
    if (n <= 0) co_return Failure::client_gone();
    c.in.commit(static_cast<size_t>(n));
  }
}

// Forwards the request, or sends usher's own response; a request body that was not read then
// ends the connection.
net::Task<Next> answer(Client& c, const RequestInfo& info, net::Buffer& head) {
  if (!info.local) co_return co_await exchange(c, *info.target->pool, info, head);
  c.current.status = info.local_status;
  const bool sent =
      co_await write_client(c, {head.begin(), head.size()}, {}, c.after(c.config().timeouts.body));
  if (!sent) co_return Next::kClose;
  if (!info.replayable()) c.linger = true;
  co_return info.replayable() ? Next::kKeepAlive : Next::kClose;
}

}  // namespace

bool begin_request(Client& c) {
  if (c.endpoint.listener < 0) return false;
  c.gen = c.worker.generation();
  const ListenerRoutes& routes = c.gen->listeners[static_cast<size_t>(c.endpoint.listener)];
  c.routes = &routes;
  if (c.routes_generation != c.gen->shared->number) {  // trusted_proxies may have changed
    c.routes_generation = c.gen->shared->number;
    c.trusted_peer = trusted(routes, c.peer);
  }
  c.current = RequestOutcome{};
  c.current.started = std::chrono::steady_clock::now();
  return true;
}

// Its state lives in this coroutine's frame, so a connection waiting for its next request
// holds none.
net::Task<Next> serve_request(Client& c) {
  RequestInfo info;
  RequestTrace trace;
  c.current.trace = &trace;
  net::Buffer request_head;
  const Failure failure = co_await read_request_head(c, info, request_head);
  if (failure) {
    if (failure.status) co_await send_status(c, failure.status);
    finish_request(c, info);
    co_return Next::kClose;
  }
  const Next next = co_await answer(c, info, request_head);
  finish_request(c, info);
  co_return next == Next::kKeepAlive && !info.keep_alive ? Next::kClose : next;
}

namespace {

// One request on the connection; false when the connection carries no other. Kept alive while
// draining too when the response said so: the client may send its next request on it (see
// kDrainIdleGraceMs).
net::Task<bool> serve_next(Client& c) {
  const Next next = co_await serve_request(c);
  if (next == Next::kAbort) abort_connection(c.socket);
  co_return next == Next::kKeepAlive;
}

}  // namespace

net::Task<void> serve_http(Worker& worker, int fd, Endpoint& endpoint) {
  Client c(worker, fd, endpoint);
  if (endpoint.listener < 0) co_return;  // a reload removed its listener meanwhile
  const ListenerRoutes& accepted_on = worker.current().listeners[endpoint.listener];
  // Connection counters stay with the listener the connection was accepted on.
  metrics::ListenerCounters& listener_counters = worker.metrics().listeners[accepted_on.metric_id];
  record_peer(c);
  // Refused before a byte is read: a denied client cannot make usher parse anything.
  Admission admission;
  if (const auto refused = Admission::admit(accepted_on.guard, c.peer, admission)) {
    listener_counters.refused[*refused].add();
    co_return;
  }
  if (sends_proxy_header(accepted_on.config, c.peer) &&
      !co_await take_proxy_header(c, accepted_on.config)) {
    listener_counters.refused[static_cast<size_t>(metrics::Refusal::kProxyHeader)].add();
    co_return;
  }
  // Read now: the handshake below may outlast the generation (a reload frees it).
  const bool http2 = accepted_on.config.http2.enabled;
  worker.add_session(c.link);
  listener_counters.connections.add();
  listener_counters.open_connections.add(1);
  c.tls_context = worker.current().tls[static_cast<size_t>(endpoint.listener)];
  if (c.tls_context && !co_await accept_tls(c, *c.tls_context)) {
    if (c.linger && c.socket.is_open()) co_await linger_close(c);
    listener_counters.open_connections.add(-1);
    worker.remove_session(c.link);
    co_return;
  }
  if (http2 && c.tls && c.tls->alpn() == "h2") {
    co_await h2::serve_http2(c);
  } else {
    for (bool first = true;; first = false) {
      const bool more = co_await await_request_bytes(c, first);
      if (more && first && http2 && !c.tls && h2::starts_preface(c.unread())) {
        co_await h2::serve_http2(c);
        break;
      }
      if (!more || !begin_request(c) || !co_await serve_next(c)) break;
    }
  }
  if (!c.linger && c.tls && c.socket.is_open()) {
    co_await c.tls->close(c.after(worker.current().config().timeouts.body));
  }
  c.in.release();
  c.gen.reset();  // lingering needs no configuration: an old generation may go meanwhile
  if (c.linger && c.socket.is_open()) co_await linger_close(c);
  listener_counters.open_connections.add(-1);
  worker.remove_session(c.link);
}

}  // namespace usher::proxy::l7
