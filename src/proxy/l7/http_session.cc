#include "proxy/l7/http_session.h"

#include <arpa/inet.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <optional>
#include <utility>

#include <spdlog/spdlog.h>

#include "codec/http1/body.h"
#include "codec/http1/head_parser.h"
#include "proxy/l7/error_response.h"
#include "proxy/l7/head_writer.h"
#include "proxy/l7/local_response.h"
#include "proxy/l7/prepare.h"
#include "proxy/l7/request_key.h"
#include "proxy/l7/session.h"
#include "proxy/l7/stream.h"
#include "proxy/l7/upstream_pool.h"
#include "proxy/worker.h"
#include "route/fields.h"

namespace usher::proxy::l7 {

namespace {

using http1::Framing;
using http1::ParseStatus;

struct ResponseInfo {
  int status = 0;
  Framing framing;
  bool upstream_keep_alive = false;
  bool client_keep_alive = false;
  bool dechunk = false;
};

enum class Next : uint8_t { kKeepAlive, kClose, kAbort };

enum class SendResult : uint8_t { kOk, kUpstreamFailed, kClientFailed, kClientBadBody };

// kNothing: the backend closed or reset before sending a byte (a stale keep-alive connection
// looks exactly like this, so such a request may be replayed on a fresh connection).
enum class HeadResult : uint8_t { kOk, kNothing, kTimeout, kBroken, kClientFailed };

void record_peer(Client& c) {
  sockaddr_storage peer{};
  socklen_t len = sizeof peer;
  if (::getpeername(c.socket.fd(), reinterpret_cast<sockaddr*>(&peer), &len) == 0) {
    const auto* address = reinterpret_cast<const sockaddr*>(&peer);
    c.ip_length = static_cast<uint8_t>(format_ip(address, c.ip_text, sizeof c.ip_text));
    c.peer = IpBytes::from_sockaddr(address);
  }
}

// Every write to the client goes through here, so that bytes sent are counted in one place
// (as handed to the socket: a failed write ends the connection anyway). Not a coroutine itself:
// no frame of its own.
net::Task<bool> write_client(Client& c, std::string_view a, std::string_view b,
                             uint64_t deadline_ms) {
  c.current.bytes_sent += a.size() + b.size();
  return write_all(c.socket, a, b, deadline_ms);
}

net::Task<bool> send_status(Client& c, int status) {
  c.linger = true;
  c.current.status = status;
  co_return co_await write_client(c, error_response(status), {}, c.after(c.config().timeouts.body));
}

net::Task<Next> fail(Client& c, int status) {
  co_await send_status(c, status);
  co_return Next::kClose;
}

// After an error response the client may still be sending; closing with unread bytes would
// reset the connection and could destroy the response before the client reads it. So: stop
// writing, discard what arrives for a short while, then close (nginx's lingering close).
net::Task<void> linger_close(Client& c) {
  constexpr uint64_t kLingerMs = 2000;
  constexpr size_t kMaxDiscard = 1 << 20;
  ::shutdown(c.socket.fd(), SHUT_WR);
  if (!c.in) c.in = c.worker.buffers().take();
  const uint64_t deadline = c.worker.reactor().now_ms() + kLingerMs;
  for (size_t discarded = 0; discarded < kMaxDiscard;) {
    long n = co_await c.socket.read(c.in.data(), c.in.capacity(), deadline);
    if (n <= 0) break;
    discarded += static_cast<size_t>(n);
  }
}

// Waits between requests holding no buffer; false when the connection should end.
net::Task<bool> await_request_bytes(Client& c, bool first) {
  while (c.in.empty()) {
    // Idle between requests, the connection holds no generation: a reload meanwhile is what its
    // next request gets.
    c.gen.reset();
    const auto& timeouts = c.worker.current().config().timeouts;
    c.in.release();
    if (c.worker.draining()) co_return false;
    c.link.idle = true;
    long ready = co_await c.socket.readable(c.after(first ? timeouts.header : timeouts.idle));
    c.link.idle = false;
    if (ready < 0) co_return false;
    c.in = c.worker.buffers().take();
    long n = c.socket.try_read(c.in.tail(), c.in.tail_room());
    if (n == -EAGAIN) continue;
    if (n <= 0) co_return false;
    c.in.commit(static_cast<size_t>(n));
  }
  co_return true;
}

// Reads and parses one request head and prepares what follows (see prepare_request).
// Returns 0, -1 (close quietly) or the HTTP status to answer before closing.
net::Task<int> read_request_head(Client& c, RequestInfo& info, net::Buffer& out) {
  Worker& w = c.worker;
  const http1::HeadLimits limits = head_limits(c.config());
  const uint64_t deadline = c.after(c.config().timeouts.header);
  size_t scanned = 0;
  while (true) {
    http1::RequestHead head;
    http1::ParseError error;
    ParseStatus status =
        http1::parse_request(c.unread(), limits, w.header_scratch(), scanned, head, error);
    if (status == ParseStatus::kError) co_return error.http_status;
    if (status == ParseStatus::kComplete) {
      c.current.bytes_received += head.head_bytes;
      int prepared = prepare_request(c, head, info, out);
      c.in.consume(head.head_bytes);
      co_return prepared;
    }
    char* tail = c.in.tail();
    if (c.in.tail_room() == 0) co_return 431;
    long n = co_await c.socket.read(tail, c.in.tail_room(), deadline);
    if (n == -ETIMEDOUT) co_return 408;
    if (n <= 0) co_return -1;
    c.in.commit(static_cast<size_t>(n));
  }
}

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

// Sends the serialised head and streams the request body from the client with back-pressure.
net::Task<SendResult> send_request(Client& c, net::Socket& upstream, const RequestInfo& info,
                                   const net::Buffer& head, Millis upstream_timeout) {
  Worker& w = c.worker;
  http1::BodyDecoder body(Framing{info.body_kind, info.body_length, {}});
  http1::BodyStep step;
  size_t first = 0;
  if (!body.done() && !c.in.empty()) {
    if (body.feed(c.unread(), step) == ParseStatus::kError) co_return SendResult::kClientBadBody;
    first = step.consumed;
  }
  std::string_view head_bytes(head.begin(), head.size());
  const bool head_sent = co_await write_all(upstream, head_bytes, c.unread().substr(0, first),
                                            c.after(upstream_timeout));
  if (!head_sent) co_return SendResult::kUpstreamFailed;
  c.in.consume(first);
  c.current.bytes_received += first;
  while (!body.done()) {
    if (c.in.empty()) {
      if (!c.in) c.in = w.buffers().take();
      char* tail = c.in.tail();
      long n = co_await c.socket.read(tail, c.in.tail_room(), c.after(c.config().timeouts.body));
      if (n <= 0) co_return SendResult::kClientFailed;
      c.in.commit(static_cast<size_t>(n));
    }
    if (body.feed(c.unread(), step) == ParseStatus::kError) co_return SendResult::kClientBadBody;
    const bool sent = co_await write_all(upstream, c.unread().substr(0, step.consumed), {},
                                         c.after(upstream_timeout));
    if (!sent) co_return SendResult::kUpstreamFailed;
    c.in.consume(step.consumed);
    c.current.bytes_received += step.consumed;
  }
  co_return SendResult::kOk;
}

// Reads the response head (forwarding interim 1xx responses) and serialises the final head for
// the client into `out`.
net::Task<HeadResult> read_response_head(Client& c, net::Socket& upstream, net::Buffer& in,
                                         const RequestInfo& info, const ResponseRewrite& edits,
                                         Millis timeout, ResponseInfo& response, net::Buffer& out,
                                         uint64_t& upstream_bytes) {
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
    if (status == ParseStatus::kError) co_return HeadResult::kBroken;
    if (status == ParseStatus::kIncomplete) {
      char* tail = in.tail();
      if (in.tail_room() == 0) co_return HeadResult::kBroken;
      long n = co_await upstream.read(tail, in.tail_room(), c.after(timeout));
      if (n == -ETIMEDOUT) co_return HeadResult::kTimeout;
      if (n <= 0) co_return any_byte ? HeadResult::kBroken : HeadResult::kNothing;
      any_byte = true;
      in.commit(static_cast<size_t>(n));
      continue;
    }
    bool interim = head.status < 200 && head.status != 101;
    if (head.status == 101 && !info.upgrade) co_return HeadResult::kBroken;
    ResponseRewrite rewrite = edits;
    rewrite.interim = interim;
    rewrite.dechunk = info.http10 && head.framing.kind == Framing::Kind::kChunked;
    rewrite.client_http10 = info.http10;
    rewrite.client_keep_alive = interim || (info.keep_alive && !w.draining() && !rewrite.dechunk &&
                                            head.framing.kind != Framing::Kind::kUntilClose);
    out.release();
    out = w.buffers().take();
    size_t n = write_response_head(head, rewrite, out.data(), out.capacity());
    if (n == 0) co_return HeadResult::kBroken;
    out.commit(n);
    in.consume(head.head_bytes);
    upstream_bytes += head.head_bytes;
    scanned = 0;
    if (interim) {
      // HTTP/1.0 clients know no interim responses; everyone else sees them as they come.
      if (!info.http10) {
        const bool sent = co_await write_client(c, {out.begin(), out.size()}, {},
                                                c.after(c.config().timeouts.body));
        if (!sent) co_return HeadResult::kClientFailed;
      }
      continue;
    }
    response = ResponseInfo{head.status, head.framing, head.keep_alive, rewrite.client_keep_alive,
                            rewrite.dechunk};
    response.framing.transfer_codings = {};  // its view dies with the buffer contents
    co_return HeadResult::kOk;
  }
}

// The body when all of it came with the head and goes out as it came (no dechunking): the common
// small response, sent with one writev from the caller's own frame. A relay coroutine for it
// would cost a frame per response, and how many such frames a loop turn holds at once (they wait
// for the turn's writes) follows the traffic's bursts, so the frame pool would keep meeting new
// peaks under a steady load.
std::optional<std::string_view> body_in_buffer(const ResponseInfo& response,
                                               const net::Buffer& in) {
  if (response.dechunk) return std::nullopt;
  http1::BodyDecoder body(response.framing);
  http1::BodyStep step;
  if (!body.done()) {
    if (in.empty() || body.feed({in.begin(), in.size()}, step) == ParseStatus::kError) {
      return std::nullopt;
    }
    if (!body.done()) return std::nullopt;
  }
  return std::string_view(in.begin(), step.consumed);
}

// Streams the response body to the client. True when the body ended as framed.
net::Task<bool> relay_response_body(Client& c, net::Socket& upstream, net::Buffer& in,
                                    const ResponseInfo& response, const net::Buffer& head,
                                    Millis upstream_timeout, uint64_t& upstream_bytes) {
  http1::BodyDecoder body(response.framing);
  std::string_view pending_head(head.begin(), head.size());
  const Millis client_timeout = c.config().timeouts.body;
  while (true) {
    while (!in.empty() && !body.done()) {
      http1::BodyStep step;
      if (body.feed({in.begin(), in.size()}, step) == ParseStatus::kError) co_return false;
      std::string_view bytes =
          response.dechunk ? std::string_view(in.begin() + step.data_offset, step.data_length)
                           : std::string_view(in.begin(), step.consumed);
      const bool sent = co_await write_client(c, pending_head, bytes, c.after(client_timeout));
      if (!sent) co_return false;
      pending_head = {};
      in.consume(step.consumed);
      upstream_bytes += step.consumed;
    }
    if (body.done()) break;
    if (!pending_head.empty()) {
      const bool sent = co_await write_client(c, pending_head, {}, c.after(client_timeout));
      if (!sent) co_return false;
      pending_head = {};
    }
    char* tail = in.tail();
    long n = co_await upstream.read(tail, in.tail_room(), c.after(upstream_timeout));
    if (n == 0 && body.until_close()) co_return true;
    if (n <= 0) co_return false;
    in.commit(static_cast<size_t>(n));
  }
  if (!pending_head.empty()) {
    const bool sent = co_await write_client(c, pending_head, {}, c.after(client_timeout));
    if (!sent) co_return false;
  }
  co_return true;
}

// After a 101: leftovers cross over, then bytes flow both ways until either side ends.
net::Task<void> run_tunnel(Client& c, net::Socket& upstream, net::Buffer& upstream_in,
                           const net::Buffer& head) {
  Worker& w = c.worker;
  const uint64_t deadline = c.after(c.config().timeouts.body);
  const bool to_client = co_await write_client(c, {head.begin(), head.size()},
                                               {upstream_in.begin(), upstream_in.size()}, deadline);
  if (!to_client) co_return;
  const bool to_backend = co_await write_all(upstream, c.unread(), {}, deadline);
  if (!to_backend) co_return;
  upstream_in.release();
  c.in.release();
  co_await tunnel(c.socket, upstream, w.buffers(), c.config().timeouts.tunnel.count());
}

int status_for_connect_error(long error) {
  return error == -ETIMEDOUT ? 504 : 502;
}

// Counts a request as active on its backend while it is in flight (least-connections and the
// like read this across all workers) and measures its time to the response head.
class ActiveRequest {
 public:
  ActiveRequest(balance::LiveState& live, uint32_t backend)
      : live_(live), backend_(backend), started_(std::chrono::steady_clock::now()) {
    live_.begin(backend_);
  }
  ActiveRequest(const ActiveRequest&) = delete;
  ActiveRequest& operator=(const ActiveRequest&) = delete;
  ~ActiveRequest() { live_.end(backend_); }

  // Returns the seconds since the try began.
  double observe_latency(uint64_t now_ms, double decay_ms) {
    const double seconds = elapsed();
    live_.observe_latency(backend_, seconds * 1e3, now_ms, decay_ms);
    return seconds;
  }
  double elapsed() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
  }

 private:
  balance::LiveState& live_;
  uint32_t backend_;
  std::chrono::steady_clock::time_point started_;
};

// What the route and the sticky policy change in a response from backend `index`.
ResponseRewrite response_edits(const RequestInfo& info, const PoolState& pool, uint32_t index) {
  const config::Route& route = *info.target->config;
  ResponseRewrite r;
  r.request_id = info.request_id.view();
  if (!route.response_headers.empty()) r.edits = &route.response_headers;
  r.values = {info.client_ip.view(), info.request_id.view(), pool.slot(index).name};
  if (pool.config.sticky) {
    const StickyBackend& sticky = pool.slot(index).sticky;
    if (pool.config.sticky->mode == config::Sticky::Mode::kPrefix) {
      r.sticky_prefix = {pool.config.sticky->cookie, true};
      r.backend_id = sticky.id;
    } else if (index != info.sticky_backend) {
      r.set_cookie = info.https_client ? sticky.set_cookie_secure : sticky.set_cookie;
    }
  }
  return r;
}

// How one try on one backend ended. Only kDone answered the client; the others say why not,
// with the status the client gets if no retry follows.
enum class TryResult : uint8_t { kDone, kConnectFailed, kReset, kTimeout, kRetryStatus };

struct Try {
  TryResult result = TryResult::kDone;
  Next next = Next::kClose;
  int status = 0;           // what the client is told if no retry follows
  int upstream_status = 0;  // the backend's response status, when one came
};

// One try on backend `index`. A keep-alive connection found stale before any response byte is
// replaced by a fresh one at once: that is the backend's idle timeout, not a failure.
net::Task<Try> try_backend(Client& c, PoolState& pool, uint32_t index, const RequestInfo& info,
                           net::Buffer& request_head, bool retry_statuses, bool& continue_sent) {
  Worker& w = c.worker;
  const config::Route& route = *info.target->config;
  const config::PoolTimeouts& timeouts = route.timeouts;
  const Millis response_timeout =
      route.retries.per_try_timeout.count() ? route.retries.per_try_timeout : timeouts.response;
  const uint32_t backend_id = pool.backend_id(index);
  const Address& address = pool.slot(index).address;
  metrics::BackendCounters& counters = w.metrics().backends[backend_id];
  ActiveRequest active(pool.live, index);
  // Request bytes reach the backend as the head plus the body counted from the client.
  const uint64_t body_before = c.current.bytes_received;
  auto count_sent = [&] {
    counters.bytes_sent.add(request_head.size() + c.current.bytes_received - body_before);
  };

  for (bool first = true;; first = false) {
    std::unique_ptr<UpstreamConn> up = first ? w.upstreams().take(backend_id) : nullptr;
    const bool reused = up != nullptr;
    if (!up) {
      long error = 0;
      up = co_await connect_upstream(w, backend_id, address, timeouts.connect, error);
      if (!up)
        co_return Try{TryResult::kConnectFailed, Next::kClose, status_for_connect_error(error)};
    }
    const bool may_replay = reused && info.replayable();
    if (info.expect_continue && !continue_sent && c.in.empty() &&
        info.body_kind != Framing::Kind::kNone) {
      continue_sent = true;
      const bool sent =
          co_await write_client(c, kContinueResponse, {}, c.after(c.config().timeouts.body));
      if (!sent) co_return Try{};
    }
    const SendResult sent =
        co_await send_request(c, up->socket, info, request_head, response_timeout);
    count_sent();
    switch (sent) {
      case SendResult::kOk:
        break;
      case SendResult::kUpstreamFailed:
        if (may_replay) continue;
        co_return Try{TryResult::kReset, Next::kClose, 502};
      case SendResult::kClientFailed:
        co_return Try{};
      case SendResult::kClientBadBody:
        co_return Try{TryResult::kDone, co_await fail(c, 400)};
    }
    net::Buffer upstream_in = w.buffers().take();
    net::Buffer response_head;
    ResponseInfo response;
    uint64_t upstream_bytes = 0;
    const HeadResult head_result = co_await read_response_head(
        c, up->socket, upstream_in, info, response_edits(info, pool, index), response_timeout,
        response, response_head, upstream_bytes);
    counters.bytes_received.add(upstream_bytes);
    upstream_bytes = 0;
    switch (head_result) {
      case HeadResult::kOk: {
        const double seconds =
            active.observe_latency(w.reactor().now_ms(), pool.options.latency_decay_ms);
        counters.first_byte.observe(seconds);
        counters.responses[metrics::status_class(response.status)].add();
        c.current.upstream_seconds = seconds;
        break;
      }
      case HeadResult::kNothing:
        if (may_replay) continue;
        co_return Try{TryResult::kReset, Next::kClose, 502};
      case HeadResult::kTimeout:
        co_return Try{TryResult::kTimeout, Next::kClose, 504};
      case HeadResult::kBroken:  // a protocol violation: answered, and counted against it
        counters.errors[static_cast<size_t>(metrics::UpstreamError::kProtocol)].add();
        co_return Try{TryResult::kDone, co_await fail(c, 502), 0, 502};
      case HeadResult::kClientFailed:
        co_return Try{};
    }
    const auto& statuses = route.retries.statuses;
    if (retry_statuses &&
        std::find(statuses.begin(), statuses.end(), response.status) != statuses.end() &&
        pool.retry_budget.try_spend(w.reactor().now_ms())) {
      co_return Try{TryResult::kRetryStatus, Next::kClose, response.status, response.status};
    }
    request_head.release();
    c.current.status = response.status;
    if (response.status == 101) {
      co_await run_tunnel(c, up->socket, upstream_in, response_head);
      co_return Try{TryResult::kDone, Next::kClose, 0, 101};
    }
    bool relayed = false;
    if (const auto body = body_in_buffer(response, upstream_in)) {
      const std::string_view head(response_head.begin(), response_head.size());
      const iovec iov[2] = {{const_cast<char*>(head.data()), head.size()},
                            {const_cast<char*>(body->data()), body->size()}};
      const uint64_t deadline = c.after(c.config().timeouts.body);
      c.current.bytes_sent += head.size() + body->size();
      const long n = co_await c.socket.writev(iov, 2, deadline);
      relayed = n == static_cast<long>(head.size() + body->size());
      if (n > 0 && !relayed) {
        const auto [head_rest, body_rest] = unwritten(head, *body, static_cast<size_t>(n));
        const bool sent = co_await write_all(c.socket, head_rest, body_rest, deadline);
        relayed = sent;
      }
      upstream_bytes += body->size();
      upstream_in.consume(body->size());
    } else {
      const bool streamed = co_await relay_response_body(
          c, up->socket, upstream_in, response, response_head, timeouts.response, upstream_bytes);
      relayed = streamed;
    }
    counters.bytes_received.add(upstream_bytes);
    counters.total.observe(active.elapsed());
    if (!relayed) co_return Try{TryResult::kDone, Next::kAbort};
    bool reusable = response.upstream_keep_alive && upstream_in.empty() &&
                    response.framing.kind != Framing::Kind::kUntilClose;
    // A backend a reload removed keeps no connection (its pool state says it left).
    if (reusable && !w.draining() && pool.present(index)) w.upstreams().give_back(std::move(up));
    co_return Try{TryResult::kDone, response.client_keep_alive ? Next::kKeepAlive : Next::kClose, 0,
                  response.status};
  }
}

// Passive checks: a backend failing real traffic `consecutive_failures` times in a row leaves the
// pool (unless that would eject more than the allowed share) for base x ejections; active checks
// bring it back. Any worker thread; racing workers agree through the compare-exchange.
void record_outcome(Worker& w, PoolState& pool, uint32_t index, bool failed) {
  balance::BackendLive& b = pool.live[index];
  if (!pool.config.outlier) return;
  if (!failed) {
    if (b.consecutive_failures.load(std::memory_order_relaxed))
      b.consecutive_failures.store(0, std::memory_order_relaxed);
    return;
  }
  const config::Outlier& rule = *pool.config.outlier;
  if (b.consecutive_failures.fetch_add(1, std::memory_order_relaxed) + 1 <
      rule.consecutive_failures)
    return;
  uint32_t ejected = 0, members = 0;
  pool.for_each_member([&](uint32_t i) {
    ++members;
    ejected += pool.live[i].ejected_until_ms.load(std::memory_order_relaxed) != 0;
  });
  if ((ejected + 1) * 100.0 > rule.max_ejection_percent * members) return;
  const uint32_t times = b.ejections.load(std::memory_order_relaxed) + 1;
  const uint64_t until =
      w.reactor().now_ms() + static_cast<uint64_t>(rule.base_ejection.count()) * times;
  uint64_t expected = 0;
  if (!b.ejected_until_ms.compare_exchange_strong(expected, until, std::memory_order_relaxed))
    return;
  b.ejections.store(times, std::memory_order_relaxed);
  b.consecutive_failures.store(0, std::memory_order_relaxed);
  b.healthy.store(false, std::memory_order_relaxed);
  spdlog::warn(
      "outlier: pool={} backend={} UP -> EJECTED for {} ms after {} consecutive failures (ejection "
      "{})",
      pool.config.name, pool.slot(index).name, rule.base_ejection.count() * times,
      rule.consecutive_failures, times);
}

void count_error(metrics::BackendCounters& counters, TryResult result) {
  using metrics::UpstreamError;
  UpstreamError kind = UpstreamError::kReset;
  switch (result) {
    case TryResult::kConnectFailed:
      kind = UpstreamError::kConnect;
      break;
    case TryResult::kTimeout:
      kind = UpstreamError::kTimeout;
      break;
    case TryResult::kReset:
      break;
    case TryResult::kDone:
    case TryResult::kRetryStatus:  // a response came and was counted by its status
      return;
  }
  counters.errors[static_cast<size_t>(kind)].add();
}

// Exponential with jitter: base x 2^(retry-1) x [0.5, 1.5), capped at 40 x base.
uint64_t backoff_ms(Worker& w, const config::Retries& retries, uint32_t retry) {
  uint64_t base = static_cast<uint64_t>(retries.backoff.count());
  uint64_t wait = std::min(base << std::min<uint32_t>(retry - 1, 16), 40 * base);
  return wait / 2 + (wait ? w.random() % wait : 0);
}

// Forwards one request and its response, retrying on the next backend in candidate order when
// that is safe: always when the connection failed (nothing was sent), and for idempotent
// requests without a body also on a reset before the response, a per-try timeout, or a
// configured status. Every retry spends from the pool's retry budget.
net::Task<Next> exchange(Client& c, PoolState& pool, const RequestInfo& info,
                         net::Buffer& request_head) {
  Worker& w = c.worker;
  const config::Retries& retries = info.target->config->retries;
  pool.retry_budget.on_request();
  balance::Candidates candidates =
      pool.balancer().candidates(info.key_hash, w.random(), w.reactor().now_ms());
  // A pinned client stays on its backend while that one is usable.
  uint32_t index = balance::kNoBackend;
  if (info.sticky_backend != balance::kNoBackend &&
      pool.live.usable_for_pinned(info.sticky_backend)) {
    index = info.sticky_backend;
    candidates.add_tried(index);
  } else {
    index = pool.balancer().next(candidates, pool.live);
  }
  bool continue_sent = false;
  metrics::PoolCounters& counters = w.metrics().pools[pool.id];
  for (uint32_t attempt = 1;; ++attempt) {
    if (index == balance::kNoBackend) {
      counters.no_backend.add();
      co_return co_await fail(c, 503);
    }
    c.current.backend = index;
    const bool more = attempt < retries.attempts;
    const bool safe_after_send = more && info.idempotent() && info.replayable();
    Try t =
        co_await try_backend(c, pool, index, info, request_head, safe_after_send, continue_sent);
    record_outcome(w, pool, index, t.result != TryResult::kDone || t.upstream_status >= 500);
    if (t.result == TryResult::kDone) co_return t.next;
    count_error(w.metrics().backends[pool.backend_id(index)], t.result);
    // A timed-out try is retried only under an explicit per-try timeout: otherwise a hung pool
    // would hold the client for attempts x the response timeout.
    const bool allowed = t.result == TryResult::kConnectFailed ? more
                         : t.result == TryResult::kTimeout
                             ? safe_after_send && retries.per_try_timeout.count() > 0
                             : safe_after_send;
    const bool retry = t.result == TryResult::kRetryStatus ||
                       (allowed && pool.retry_budget.try_spend(w.reactor().now_ms()));
    if (!retry) co_return co_await fail(c, t.status);
    counters.retries.add();
    ++c.current.retries;
    index = pool.balancer().next(candidates, pool.live);
    co_await net::sleep_until(w.reactor(), w.reactor().now_ms() + backoff_ms(w, retries, attempt));
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

// One access log line for a finished request.
void log_request(Client& c, const RequestInfo& info, double seconds) {
  log::Channel* channel = c.worker.access_log();
  if (!channel || c.current.status == 0) return;
  using Field = LoggedFields::Field;
  const config::Listener& listener = c.routes->config;
  log::RequestRecord r;
  r.client = info.client_ip.size ? info.client_ip.view() : c.ip();
  r.method = info.logged.get(Field::kMethod);
  r.host = info.logged.get(Field::kHost);
  r.target = info.logged.get(Field::kTarget);
  r.referer = info.logged.get(Field::kReferer);
  r.user_agent = info.logged.get(Field::kUserAgent);
  r.request_id = info.request_id.view();
  r.version_minor = info.http10 ? 0 : 1;
  r.status = c.current.status;
  r.bytes_sent = c.current.bytes_sent;
  r.bytes_received = c.current.bytes_received;
  r.duration_seconds = seconds;
  r.listener = listener.name.empty() ? std::string_view("-") : std::string_view(listener.name);
  if (info.target) {
    r.route = info.target->config->name;
    if (const PoolState* pool = info.target->pool) {
      r.pool = pool->config.name;
      if (c.current.backend != balance::kNoBackend) {
        r.backend = pool->slot(c.current.backend).name;
        if (c.current.upstream_seconds > 0) r.upstream_seconds = c.current.upstream_seconds;
      }
    }
  }
  r.retries = c.current.retries;
  channel->append(r);
}

// Counts a finished request: what its client was answered, on its listener and route.
void account(Client& c, const RequestInfo& info, double seconds) {
  metrics::Shard& m = c.worker.metrics();
  metrics::ListenerCounters& listener = m.listeners[c.routes->metric_id];
  listener.bytes_received.add(c.current.bytes_received);
  listener.bytes_sent.add(c.current.bytes_sent);
  if (c.current.status == 0) return;
  const size_t status_class = metrics::status_class(c.current.status);
  listener.responses[status_class].add();
  if (!info.target) return;
  metrics::RouteCounters& route = m.routes[info.target->metric_id];
  route.responses[status_class].add();
  route.duration.observe(seconds);
}

// The request's time runs from its first bytes to its last answer byte, as nginx's request_time.
void finish_request(Client& c, const RequestInfo& info) {
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - c.current.started).count();
  account(c, info, seconds);
  log_request(c, info, seconds);
}

// Takes the worker's current generation for the next request, and with it the listener's routes
// as that generation has them; false when a reload removed the listener (the connection ends).
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

}  // namespace

net::Task<void> serve_http(Worker& worker, int fd, Endpoint& endpoint) {
  Client c(worker, fd, endpoint);
  worker.add_session(c.link);
  // Connection counters stay with the listener the connection was accepted on.
  metrics::ListenerCounters& listener_counters =
      worker.metrics().listeners[worker.current().listeners[endpoint.listener].metric_id];
  listener_counters.connections.add();
  listener_counters.open_connections.add(1);
  record_peer(c);
  for (bool first = true;; first = false) {
    const bool more = co_await await_request_bytes(c, first);
    if (!more || !begin_request(c)) break;
    RequestInfo info;
    net::Buffer request_head;
    int status = co_await read_request_head(c, info, request_head);
    if (status != 0) {
      if (status > 0) co_await send_status(c, status);
      finish_request(c, info);
      break;
    }
    Next next = co_await answer(c, info, request_head);
    finish_request(c, info);
    info.logged.text.release();
    if (next == Next::kAbort) abort_connection(c.socket);
    if (next != Next::kKeepAlive || !info.keep_alive || worker.draining()) break;
  }
  if (c.linger && c.socket.is_open()) co_await linger_close(c);
  c.in.release();
  c.gen.reset();
  listener_counters.open_connections.add(-1);
  worker.remove_session(c.link);
}

}  // namespace usher::proxy::l7
