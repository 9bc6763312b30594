#include "proxy/l7/exchange.h"

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <optional>

#include "proxy/h2/backend.h"
#include "proxy/l7/backend_choice.h"
#include "proxy/l7/error_response.h"
#include "proxy/l7/failure.h"
#include "proxy/l7/pick_trace.h"
#include "proxy/l7/request_body.h"
#include "proxy/l7/request_trace.h"
#include "proxy/l7/stream.h"
#include "proxy/l7/upstream_io.h"
#include "proxy/worker.h"

namespace usher::proxy::l7 {

namespace {

using http1::Framing;
using Cause = Failure::Cause;

// Keeps a request counted active on its backend while it is in flight (least-connections,
// max_connections and the like read this across all workers) and measures its time to the
// response head. The place was taken when the backend was chosen (take_backend).
class ActiveRequest {
 public:
  ActiveRequest(balance::LiveState& live, uint32_t backend)
      : live_(live), backend_(backend), started_(std::chrono::steady_clock::now()) {}
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
  r.values = {info.client_ip.view(), info.request_id.view(), pool.slot(index).name, info.tls, {}};
  if (route.response_headers.uses_geo_country()) {
    r.values.geo_country = info.client.place().country_code();
  }
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

// Whether a failed try may be followed by another, by what failed.
struct TryPolicy {
  bool another_try = false;  // attempts are left
  bool replay_safe = false;  // and the request is idempotent without a body: it may be resent
  bool per_try_timeout = false;
};

bool retry_safe(const TryPolicy& policy, Cause cause) {
  switch (cause) {
    case Cause::kConnect:  // nothing was sent
      return policy.another_try;
    case Cause::kTimeout:  // without a per-try timeout a hung pool would hold the client
      return policy.replay_safe && policy.per_try_timeout;
    case Cause::kStale:
    case Cause::kReset:
      return policy.replay_safe;
    case Cause::kStatus:  // decided with the budget where the response came
      return true;
    case Cause::kNone:
    case Cause::kProtocol:
      return false;
  }
  return false;
}

// With the listener's debug_headers, the X-Usher-Pick field of the response: the route, then
// why this backend (describe_pick). Allocated only then.
std::string pick_field(const Client& c, const RequestInfo& info, const PoolState& pool,
                       uint32_t backend) {
  if (!c.routes->config.debug_headers || !c.current.pick.recorded) return {};
  char text[RecentPicks::kLongest];
  const std::string_view why = describe_pick(c.current.pick, pool, backend, text);
  return fmt::format("X-Usher-Pick: route {}: {}\r\n", info.target->config->name, why);
}

// Whether something will say why this request's backend was chosen (the access log, the
// response's debug field, the dashboard's turn): only then are the pool's members looked at.
bool explains(const Client& c, const PoolState& pool) {
  const config::AccessLog& log = c.config().access_log;
  return c.routes->config.debug_headers ||
         (log.target != config::AccessLog::Target::kOff &&
          log.format == config::AccessLog::Format::kJson) ||
         pool.recent_picks.due(c.worker.reactor().now_ms());
}

// usher's own error response, with X-Usher-Pick when the listener asks for it.
net::Task<Next> fail_picked(Client& c, const RequestInfo& info, const PoolState& pool, int status) {
  const std::string field = pick_field(c, info, pool, c.current.backend);
  co_await send_status(c, status, field);
  co_return Next::kClose;
}

// A try's request sent and its response head read, or why not.
struct Forwarded {
  Failure failure;
  std::unique_ptr<UpstreamConn> up;
  net::Buffer in;    // response bytes after the head
  net::Buffer head;  // the response head as the client gets it
  ResponseInfo response;
  double first_byte_seconds = 0;
};

// Sends the request on a kept-alive connection to backend `index` or a new one, and reads the
// response head. A kept-alive connection found stale before any response byte is replaced by a
// fresh one at once: that is the backend's idle timeout, not a failure.
net::Task<Forwarded> forward(Client& c, PoolState& pool, uint32_t index, const RequestInfo& info,
                             const net::Buffer& request_head, const BufferedBody* buffered,
                             bool& continue_sent, ActiveRequest& active) {
  Worker& w = c.worker;
  const config::Route& route = *info.target->config;
  const Millis response_timeout = route.retries.per_try_timeout.count()
                                      ? route.retries.per_try_timeout
                                      : route.timeouts.response;
  const uint32_t backend_id = pool.backend_id(index);
  metrics::BackendCounters& counters = w.metrics().backends[backend_id];
  Forwarded f;
  const std::string debug_field = pick_field(c, info, pool, index);
  ResponseRewrite edits = response_edits(info, pool, index);
  edits.extra_fields = debug_field;
  for (bool first = true;; first = false) {
    f.up = first && !pool.config.h2 ? w.upstreams().take(backend_id) : nullptr;
    const bool may_replay = f.up != nullptr && (info.replayable() || (buffered && buffered->whole));
    if (!f.up && pool.config.h2) {
      f.up =
          co_await w.h2_backends().open_stream(c, pool, index, route.timeouts.connect, f.failure);
    } else if (!f.up) {
      f.up = co_await open_upstream(c, pool, index, route.timeouts.connect, f.failure);
    }
    if (!f.up) co_return f;
    if (c.cancelled) {
      f.failure = Failure::client_gone();
      co_return f;
    }
    c.upstream = f.up.get();
    if (info.expect_continue && !continue_sent && c.in.empty() &&
        info.body_kind != Framing::Kind::kNone) {
      continue_sent = true;
      const bool sent =
          co_await write_client(c, kContinueResponse, {}, c.after(c.config().timeouts.body));
      if (!sent) {
        f.failure = Failure::client_gone();
        co_return f;
      }
    }
    const uint64_t body_before = c.current.bytes_received;
    f.failure = co_await send_request(c, f.up->side(), info, request_head, buffered);
    counters.bytes_sent.add(request_head.size() + c.current.bytes_received - body_before +
                            (buffered ? buffered->bytes.size() : 0));
    if (f.failure.side == Failure::Side::kUpstream && may_replay && !c.cancelled) continue;
    if (f.failure) co_return f;
    f.in = w.buffers().take();
    uint64_t upstream_bytes = 0;
    f.failure = co_await read_response_head(c, f.up->side(), f.in, info, edits, response_timeout,
                                            f.response, f.head, upstream_bytes);
    counters.bytes_received.add(upstream_bytes);
    if (f.failure.cause == Cause::kStale && may_replay && !c.cancelled) continue;
    if (f.failure) co_return f;
    f.first_byte_seconds =
        active.observe_latency(w.reactor().now_ms(), pool.options.latency_decay_ms);
    c.current.upstream_seconds = f.first_byte_seconds;
    co_return f;
  }
}

// How one try on one backend ended: answered (no failure; `next` says what becomes of the
// connection), or failed before anything reached the client.
struct Try {
  Failure failure;
  Next next = Next::kClose;
  int upstream_status = 0;  // the backend's response status, when one came
};

// A response counts once usher takes it: retried on by its status, or relayed (even if cut
// later). One refused before a byte of it left counts as a protocol error instead.
void count_response(metrics::BackendCounters& counters, const Forwarded& f) {
  counters.first_byte.observe(f.first_byte_seconds);
  counters.responses[metrics::status_class(f.response.status)].add();
}

// One try on backend `index`: forward, then relay the response (or the tunnel it opens).
net::Task<Try> try_backend(Client& c, PoolState& pool, uint32_t index, const RequestInfo& info,
                           net::Buffer& request_head, const BufferedBody* buffered,
                           const TryPolicy& policy, bool& continue_sent) {
  Worker& w = c.worker;
  ActiveRequest active(pool.live, index);
  Forwarded f =
      co_await forward(c, pool, index, info, request_head, buffered, continue_sent, active);
  if (f.failure) {
    f.failure.retry_safe = retry_safe(policy, f.failure.cause);
    co_return Try{f.failure};
  }
  metrics::BackendCounters& counters = w.metrics().backends[pool.backend_id(index)];
  const int status = f.response.status;
  const auto& statuses = info.target->config->retries.statuses;
  if (policy.replay_safe && std::find(statuses.begin(), statuses.end(), status) != statuses.end() &&
      pool.retry_budget.try_spend(w.reactor().now_ms())) {
    count_response(counters, f);
    co_return Try{Failure::upstream(Cause::kStatus, status, true), Next::kClose, status};
  }
  request_head.release();
  c.current.status = status;
  if (status == 101) {
    count_response(counters, f);
    co_await run_tunnel(c, f.up->side(), f.in, f.head, info.websocket_upgrade);
    co_return Try{{}, Next::kClose, 101};
  }
  uint64_t upstream_bytes = 0;
  Relayed relayed = Relayed::kCut;
  if (const auto body = body_in_buffer(f.response, f.in)) {
    // Written from this frame (see body_in_buffer).
    const std::string_view head(f.head.begin(), f.head.size());
    const iovec iov[2] = {{const_cast<char*>(head.data()), head.size()},
                          {const_cast<char*>(body->data()), body->size()}};
    const uint64_t deadline = c.after(c.config().timeouts.body);
    if (c.tls || c.channel) {
      if (co_await write_client(c, head, *body, deadline)) relayed = Relayed::kWhole;
    } else {
      c.current.bytes_sent += head.size() + body->size();
      const long n = co_await c.socket.writev(iov, 2, deadline);
      if (n == static_cast<long>(head.size() + body->size())) relayed = Relayed::kWhole;
      if (n > 0 && relayed != Relayed::kWhole) {
        const auto [head_rest, body_rest] = unwritten(head, *body, static_cast<size_t>(n));
        if (co_await write_all(c.socket, head_rest, body_rest, deadline)) relayed = Relayed::kWhole;
      }
    }
    upstream_bytes = body->size();
    f.in.consume(body->size());
  } else {
    relayed = co_await relay_response_body(c, f.up->side(), f.in, f.response, f.head,
                                           info.target->config->timeouts.response, upstream_bytes);
  }
  counters.bytes_received.add(upstream_bytes);
  if (relayed == Relayed::kRefused) co_return Try{Failure::upstream(Cause::kProtocol, 502, false)};
  count_response(counters, f);
  counters.total.observe(active.elapsed());
  if (relayed == Relayed::kCut) co_return Try{{}, Next::kAbort, status};
  const bool reusable = !f.up->channel && f.response.upstream_keep_alive && f.in.empty() &&
                        f.response.framing.kind != Framing::Kind::kUntilClose;
  // A backend a reload removed keeps no connection (its pool state says it left).
  if (reusable && !w.draining() && pool.present(index)) w.upstreams().give_back(std::move(f.up));
  co_return Try{{}, f.response.client_keep_alive ? Next::kKeepAlive : Next::kClose, status};
}

// Exponential with jitter: base x 2^(retry-1) x [0.5, 1.5), capped at 40 x base.
uint64_t backoff_ms(Worker& w, const config::Retries& retries, uint32_t retry) {
  uint64_t base = static_cast<uint64_t>(retries.backoff.count());
  uint64_t wait = std::min(base << std::min<uint32_t>(retry - 1, 16), 40 * base);
  return wait / 2 + (wait ? w.random() % wait : 0);
}

// Whether a failed try goes on to `next`. A backend that was sent the request and answered
// nothing (a reset, a close, a timeout) is not asked again at once: with no other backend usable,
// the client hears now, as from HAProxy and nginx, not after a second wait on a backend that has
// just shown it is not serving. (A kept-alive connection found closed is no such failure: forward
// replaces it without a retry.) A failed connect sent nothing, and a retried status came from a
// backend that answers: those may go back to the same one.
bool goes_on(const Failure& f, uint32_t index, uint32_t next) {
  return next != index || f.cause == Cause::kConnect || f.cause == Cause::kStatus;
}

}  // namespace

void cancel_upstream(Client& c) {
  c.cancelled = true;
  if (!c.upstream) return;
  if (c.upstream->channel) {
    c.upstream->channel->cancel();
  } else {
    c.worker.reactor().cancel(c.upstream->socket);
  }
}

// Retries go to the next candidate when that is safe: always when the connection failed
// (nothing was sent), and for idempotent requests without a body also on a reset before the
// response, a per-try timeout, or a configured status; never straight back to a backend that
// took the request and answered nothing (goes_on). Every retry spends from the pool's retry
// budget.
net::Task<Next> exchange(Client& c, PoolState& pool, const RequestInfo& info,
                         net::Buffer& request_head) {
  Worker& w = c.worker;
  const config::Retries& retries = info.target->config->retries;
  bool continue_sent = false;
  // Read before a backend is chosen: a malformed body then reaches none, and one read whole
  // may be sent again.
  std::optional<BufferedBody> buffered;
  if (pool.config.buffer_request && info.body_kind != Framing::Kind::kNone &&
      !(info.body_kind == Framing::Kind::kLength &&
        info.body_length > pool.config.buffer_request)) {
    buffered.emplace();
    const Failure failure =
        co_await buffer_body(c, info, pool.config.buffer_request, *buffered, continue_sent);
    if (failure) co_return co_await fail_or_close(c, failure.status);
    continue_sent = continue_sent || buffered->whole;  // nothing left for the client to send
  }
  const bool replayable = info.replayable() || (buffered && buffered->whole);
  pool.retry_budget.on_request();
  balance::Candidates candidates =
      pool.balancer().candidates(info.key_hash, w.random(), w.reactor().now_ms());
  metrics::PoolCounters& counters = w.metrics().pools[pool.id];
  if (explains(c, pool)) record_candidates(c.current.pick, pool);
  uint32_t index = balance::kNoBackend;
  if (pool.config.max_connections) {
    int refused = 0;
    index = co_await queued_candidate(c, pool, info, candidates, refused);
    if (refused) co_return co_await fail_picked(c, info, pool, refused);
  } else {
    index = first_candidate(pool, info, candidates, c.current.pick);
  }
  RetrySlot retry_slot(pool);
  for (uint32_t attempt = 1;; ++attempt) {
    if (index == balance::kNoBackend) {
      counters.no_backend.add();
      co_return co_await fail_picked(c, info, pool, 503);
    }
    c.current.backend = index;
    TryPolicy policy;
    policy.another_try = attempt < retries.attempts;
    policy.replay_safe = policy.another_try && info.idempotent() && replayable;
    policy.per_try_timeout = retries.per_try_timeout.count() > 0;
    begin_try(c, request_head);
    const Try t = co_await try_backend(c, pool, index, info, request_head,
                                       buffered ? &*buffered : nullptr, policy, continue_sent);
    c.upstream = nullptr;
    end_try(c, index, t.upstream_status, t.failure);
    const Failure& f = t.failure;
    if (c.cancelled) co_return Next::kAbort;  // the client reset the stream: nobody to answer
    pool.record_outcome(index, f.side == Failure::Side::kUpstream || t.upstream_status >= 500,
                        w.reactor().now_ms());
    if (!f) co_return t.next;
    if (f.side != Failure::Side::kUpstream) co_return co_await fail_or_close(c, f.status);
    record_failed_try(c.current.pick, index, f);
    if (metrics::UpstreamError kind; upstream_error_kind(f.cause, kind)) {
      w.metrics().backends[pool.backend_id(index)].errors[static_cast<size_t>(kind)].add();
    }
    if (!f.retry_safe) co_return co_await fail_picked(c, info, pool, f.status);
    // No backend left (or none with room) ends it here: the client hears what failed, at once.
    const uint32_t next = take_backend(pool, candidates);
    bool retry = next != balance::kNoBackend && goes_on(f, index, next);
    if (retry && !retry_slot.take()) {
      counters.breaker_trips[static_cast<size_t>(metrics::BreakerTrip::kRetries)].add();
      retry = false;
    }
    retry =
        retry && (f.cause == Cause::kStatus || pool.retry_budget.try_spend(w.reactor().now_ms()));
    if (retry) {
      counters.retries.add();
      ++c.current.retries;
      index = next;
      co_await net::sleep_until(w.reactor(),
                                w.reactor().now_ms() + backoff_ms(w, retries, attempt));
      continue;
    }
    if (next != balance::kNoBackend) pool.live.end(next);
    co_return co_await fail_picked(c, info, pool, f.status);
  }
}

}  // namespace usher::proxy::l7
