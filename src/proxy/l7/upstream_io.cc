#include "proxy/l7/upstream_io.h"

#include <spdlog/spdlog.h>

#include <cerrno>
#include <optional>

#include "codec/http1/body.h"
#include "codec/http1/head_parser.h"
#include "proxy/l7/client_io.h"
#include "proxy/l7/request_body.h"
#include "proxy/l7/stream.h"
#include "proxy/worker.h"

namespace usher::proxy::l7 {

using http1::Framing;
using http1::ParseStatus;

net::Task<std::unique_ptr<UpstreamConn>> connect_upstream(Worker& w, uint32_t backend_id,
                                                          const Address& address, Millis timeout,
                                                          long& error) {
  int fd = net::Socket::open_tcp(address);
  if (fd < 0) {
    error = -errno;
    co_return nullptr;
  }
  auto conn = std::make_unique<UpstreamConn>(w.reactor(), fd, backend_id);
  error = co_await conn->socket.connect(address, w.reactor().now_ms() + timeout.count());
  if (error != 0) co_return nullptr;
  co_return conn;
}

net::Task<Handshake> secure_upstream(Worker& w, UpstreamConn& conn,
                                     std::shared_ptr<const tls::ClientContext> context,
                                     uint32_t slot, const Address& address, Millis timeout) {
  SSL* ssl = context->new_connection(slot, address);
  if (!ssl) co_return Handshake{tls::HandshakeFailure::kOther, "cannot create a TLS connection"};
  conn.tls_context = std::move(context);
  conn.tls = std::make_unique<tls::Stream>(ssl, conn.socket);
  const tls::HandshakeFailure failure =
      co_await conn.tls->handshake(w.reactor().now_ms() + timeout.count());
  if (failure == tls::HandshakeFailure::kNone) co_return Handshake{};
  co_return Handshake{failure, tls::handshake_error(*conn.tls, failure)};
}

namespace {

// Writes to the backend while it keeps taking bytes (write_all_idle); through TLS, the whole
// write must be taken within idle_ms, and a failure reads as a reset.
net::Task<long> write_upstream(Side upstream, std::string_view a, std::string_view b,
                               uint64_t idle_ms) {
  if (upstream.channel) {
    const uint64_t deadline = upstream.socket.reactor().now_ms() + idle_ms;
    co_return co_await upstream.channel->write_all(a, b, deadline) ? 0 : -EPIPE;
  }
  if (!upstream.tls) co_return co_await write_all_idle(upstream.socket, a, b, idle_ms);
  const uint64_t deadline = upstream.socket.reactor().now_ms() + idle_ms;
  co_return co_await upstream.tls->write_all(a, b, deadline) ? 0 : -EPIPE;
}

// A backend that stopped taking the request is a timeout (504), one that refused it a reset (502).
Failure send_failure(long error) {
  if (error == -ETIMEDOUT) return Failure::upstream(Failure::Cause::kTimeout, 504, false);
  return Failure::upstream(Failure::Cause::kReset, 502, false);
}

}  // namespace

net::Task<Failure> send_request(Client& c, Side upstream, const RequestInfo& info,
                                const net::Buffer& head, const BufferedBody* buffered) {
  const uint64_t idle_ms = static_cast<uint64_t>(c.config().timeouts.body.count());
  std::string_view head_bytes(head.begin(), head.size());
  if (buffered) {
    const long sent = co_await write_upstream(upstream, head_bytes, buffered->bytes, idle_ms);
    if (sent < 0) co_return send_failure(sent);
    if (buffered->whole) co_return Failure{};
    head_bytes = {};
  }
  http1::BodyDecoder body = buffered
                                ? buffered->decoder
                                : http1::BodyDecoder(Framing{info.body_kind, info.body_length, {}});
  http1::BodyStep step;
  size_t first = 0;
  if (!body.done() && !c.in.empty()) {
    if (body.feed(c.unread(), step) == ParseStatus::kError) co_return Failure::client(400);
    first = step.consumed;
  }
  if (!head_bytes.empty() || first) {
    const long head_sent =
        co_await write_upstream(upstream, head_bytes, c.unread().substr(0, first), idle_ms);
    if (head_sent < 0) co_return send_failure(head_sent);
  }
  c.in.consume(first);
  c.current.bytes_received += first;
  BodyPace pace(c.config().limits.min_body_rate, c.worker.reactor().now_ms());
  while (!body.done()) {
    if (c.in.empty()) {
      const long n = co_await read_body_bytes(c, pace);
      if (n == kBodyTooSlow) {
        c.current.guard = "body_rate";
        co_return Failure::client(408);
      }
      if (n <= 0) co_return Failure::client_gone();
    }
    if (body.feed(c.unread(), step) == ParseStatus::kError) co_return Failure::client(400);
    const uint64_t write_began = c.worker.reactor().now_ms();
    const long sent =
        co_await write_upstream(upstream, c.unread().substr(0, step.consumed), {}, idle_ms);
    if (sent < 0) co_return send_failure(sent);
    pace.hold(c.worker.reactor().now_ms() - write_began);
    c.in.consume(step.consumed);
    c.current.bytes_received += step.consumed;
  }
  co_return Failure{};
}

net::Task<Failure> read_response_head(Client& c, Side upstream, net::Buffer& in,
                                      const RequestInfo& info, const ResponseRewrite& edits,
                                      Millis timeout, ResponseInfo& response, net::Buffer& out,
                                      uint64_t& upstream_bytes) {
  const Failure kBroken = Failure::upstream(Failure::Cause::kProtocol, 502, false);
  Worker& w = c.worker;
  const http1::HeadLimits limits = head_limits(c.config());
  size_t scanned = 0;
  bool any_byte = false;
  while (true) {
    http1::ResponseHead head;
    http1::ParseError error;
    std::string_view unread(in.begin(), in.size());
    ParseStatus status = http1::parse_response(unread, limits, w.header_scratch(), info.method,
                                               scanned, head, error);
    if (status == ParseStatus::kError) co_return kBroken;
    if (status == ParseStatus::kIncomplete) {
      char* tail = in.tail();
      if (in.tail_room() == 0) co_return kBroken;
      long n = co_await upstream.read(tail, in.tail_room(), c.upstream_deadline(timeout));
      if (n == -ETIMEDOUT) co_return Failure::upstream(Failure::Cause::kTimeout, 504, false);
      // An HTTP/2 backend refused the stream unprocessed: as a failed connect, nothing was done.
      if (n == -ECONNREFUSED && !any_byte) {
        co_return Failure::upstream(Failure::Cause::kConnect, 502, false);
      }
      if (n <= 0)
        co_return any_byte ? kBroken : Failure::upstream(Failure::Cause::kStale, 502, false);
      any_byte = true;
      in.commit(static_cast<size_t>(n));
      continue;
    }
    bool interim = head.status < 200 && head.status != 101;
    if (head.status == 101 && !info.upgrade) co_return kBroken;
    ResponseRewrite rewrite = edits;
    rewrite.interim = interim;
    rewrite.dechunk = info.http10 && head.framing.kind == Framing::Kind::kChunked;
    rewrite.client_http10 = info.http10;
    rewrite.client_keep_alive = interim || (info.keep_alive && !w.draining() && !rewrite.dechunk &&
                                            head.framing.kind != Framing::Kind::kUntilClose);
    out.release();
    out = w.buffers().take();
    size_t n = write_response_head(head, rewrite, out.data(), out.capacity());
    if (n == 0) co_return Failure::internal(502);  // no room for the head usher writes
    out.commit(n);
    in.consume(head.head_bytes);
    upstream_bytes += head.head_bytes;
    scanned = 0;
    if (interim) {
      // HTTP/1.0 clients know no interim responses; everyone else sees them as they come.
      if (!info.http10) {
        const bool sent = co_await write_client(c, {out.begin(), out.size()}, {},
                                                c.after(c.config().timeouts.body));
        if (!sent) co_return Failure::client_gone();
      }
      continue;
    }
    response = ResponseInfo{head.status, head.framing, head.keep_alive, rewrite.client_keep_alive,
                            rewrite.dechunk};
    response.framing.transfer_codings = {};  // its view dies with the buffer contents
    co_return Failure{};
  }
}

std::optional<std::string_view> body_in_buffer(const ResponseInfo& response,
                                               const net::Buffer& in) {
  if (response.dechunk) return std::nullopt;
  http1::BodyDecoder body(response.framing);
  size_t consumed = 0;
  while (!body.done()) {  // a chunked body's steps end at its data and at its trailers
    http1::BodyStep step;
    const std::string_view rest(in.begin() + consumed, in.size() - consumed);
    if (rest.empty() || body.feed(rest, step) == ParseStatus::kError) return std::nullopt;
    consumed += step.consumed;
  }
  return std::string_view(in.begin(), consumed);
}

net::Task<Relayed> relay_response_body(Client& c, Side upstream, net::Buffer& in,
                                       const ResponseInfo& response, const net::Buffer& head,
                                       Millis upstream_timeout, uint64_t& upstream_bytes) {
  http1::BodyDecoder body(response.framing);
  std::string_view pending_head(head.begin(), head.size());
  const Millis client_timeout = c.config().timeouts.body;
  while (true) {
    while (!in.empty() && !body.done()) {
      http1::BodyStep step;
      if (body.feed({in.begin(), in.size()}, step) == ParseStatus::kError) {
        co_return pending_head.empty() ? Relayed::kCut : Relayed::kRefused;
      }
      std::string_view bytes =
          response.dechunk ? std::string_view(in.begin() + step.data_offset, step.data_length)
                           : std::string_view(in.begin(), step.consumed);
      const bool sent = co_await write_client(c, pending_head, bytes, c.after(client_timeout));
      if (!sent) co_return Relayed::kCut;
      pending_head = {};
      in.consume(step.consumed);
      upstream_bytes += step.consumed;
    }
    if (body.done()) break;
    if (!pending_head.empty()) {
      const bool sent = co_await write_client(c, pending_head, {}, c.after(client_timeout));
      if (!sent) co_return Relayed::kCut;
      pending_head = {};
    }
    char* tail = in.tail();
    long n = co_await upstream.read(tail, in.tail_room(), c.upstream_deadline(upstream_timeout));
    if (n == 0 && body.until_close()) co_return Relayed::kWhole;
    if (n <= 0) co_return Relayed::kCut;
    in.commit(static_cast<size_t>(n));
  }
  if (!pending_head.empty()) {
    const bool sent = co_await write_client(c, pending_head, {}, c.after(client_timeout));
    if (!sent) co_return Relayed::kCut;
  }
  co_return Relayed::kWhole;
}

net::Task<void> run_tunnel(Client& c, Side upstream, net::Buffer& upstream_in,
                           const net::Buffer& head, bool websocket) {
  Worker& w = c.worker;
  const uint64_t deadline = c.after(c.config().timeouts.body);
  // The frames' boundaries count from the first byte after the heads, also those that came
  // with them.
  std::optional<TunnelControl> control;
  if (websocket) control.emplace(w.reactor(), static_cast<uint32_t>(w.random()));
  const std::string_view backend_first(upstream_in.begin(), upstream_in.size());
  const bool to_client =
      co_await write_client(c, {head.begin(), head.size()}, backend_first, deadline);
  if (!to_client) co_return;
  if (control) control->toward[0].written.feed(backend_first);
  const std::string_view client_first = c.unread();
  const bool to_backend = co_await upstream.write_all(client_first, {}, deadline);
  if (!to_backend) co_return;
  if (control) control->toward[1].written.feed(client_first);
  upstream_in.release();
  c.in.release();
  const auto idle_ms = static_cast<uint64_t>(c.config().timeouts.tunnel.count());
  if (!control) {
    co_await tunnel(c.side(), upstream, w.buffers(), idle_ms);
    co_return;
  }
  w.add_tunnel(c.link, *control);
  co_await tunnel(c.side(), upstream, w.buffers(), idle_ms, &*control);
  w.remove_tunnel(c.link);
}

namespace {

// One line a second per worker at most: a backend failing every handshake fails every request.
void log_handshake_failure(Worker& w, const PoolState& pool, uint32_t index,
                           const std::string& reason) {
  thread_local uint64_t quiet_until_ms = 0;
  thread_local uint64_t suppressed = 0;
  const uint64_t now = w.reactor().now_ms();
  if (now < quiet_until_ms) {
    ++suppressed;
    return;
  }
  quiet_until_ms = now + 1000;
  spdlog::warn("upstream tls: pool={} backend={} handshake failed: {}{}", pool.config.name,
               pool.slot(index).name, reason,
               suppressed ? fmt::format(" ({} more failures not logged)", suppressed) : "");
  suppressed = 0;
}

}  // namespace

net::Task<std::unique_ptr<UpstreamConn>> open_upstream(Client& c, PoolState& pool, uint32_t index,
                                                       Millis timeout, Failure& failure) {
  Worker& w = c.worker;
  long error = 0;
  std::unique_ptr<UpstreamConn> up = co_await connect_upstream(
      w, pool.backend_id(index), pool.slot(index).address, timeout, error);
  if (!up) {
    failure = Failure::upstream(Failure::Cause::kConnect, error == -ETIMEDOUT ? 504 : 502, false);
    co_return nullptr;
  }
  const auto& context = c.gen->backend_tls(pool);
  if (!context) co_return up;
  const Handshake handshake =
      co_await secure_upstream(w, *up, context, index, pool.slot(index).address, timeout);
  if (handshake.failure == tls::HandshakeFailure::kNone) co_return up;
  // Nothing was sent: like a refused connect, another backend may take the request.
  log_handshake_failure(w, pool, index, handshake.reason);
  const bool timed_out = handshake.failure == tls::HandshakeFailure::kTimeout;
  failure = Failure::upstream(Failure::Cause::kConnect, timed_out ? 504 : 502, false);
  co_return nullptr;
}

}  // namespace usher::proxy::l7
