#include "proxy/l4/splice_pair.h"

#include <sys/socket.h>

#include <cerrno>
#include <coroutine>

#include "net/relay.h"
#include "proxy/l4/prelude.h"
#include "proxy/l7/stream.h"

namespace usher::proxy::l4 {

namespace {

// Counts finished directions (the last resumes the waiting connection) and remembers when
// either direction last moved bytes.
struct Join {
  int pending = 2;
  uint64_t last_activity_ms = 0;
  std::coroutine_handle<> waiter;
  SpliceTotals totals;

  void arrive() {
    if (--pending == 0 && waiter) waiter.resume();
  }
  bool await_ready() const noexcept { return pending == 0; }
  void await_suspend(std::coroutine_handle<> h) noexcept { waiter = h; }
  void await_resume() const noexcept {}

  void fail(long error, bool on_client) {
    if (totals.error != 0) return;
    totals.error = error;
    totals.client_failed = on_client;
  }
};

struct Direction {
  net::Socket& from;
  net::Socket& to;
  bool from_client;
  uint64_t* delivered;
  bool check_first = false;  // the PROXY signature check of the client's first bytes
};

// Collects the client's first bytes until they show whether a PROXY header begins there, then
// writes them on. kMore while too few have come, kPass once written, kFail after a failure or
// a header.
enum class First : uint8_t { kMore, kPass, kFail };
net::Task<First> check_first(const Direction& d, const net::Pipe& pipe, size_t in,
                             std::string& first, uint64_t idle_ms, Join& join) {
  if (!take_from_pipe(pipe, in, first)) {
    join.fail(-EIO, false);
    co_return First::kFail;
  }
  const ProxySignature signature = proxy_signature(first);
  if (signature == ProxySignature::kYes) {
    join.fail(-EPROTO, true);
    co_return First::kFail;
  }
  if (signature == ProxySignature::kMaybe) co_return First::kMore;
  net::Reactor& reactor = d.to.reactor();
  if (!co_await l7::write_all(d.to, first, {}, reactor.now_ms() + idle_ms)) {
    join.fail(-EPIPE, false);
    co_return First::kFail;
  }
  *d.delivered += first.size();
  co_return First::kPass;
}

// Moves what is in the pipe to `to`; false after a failure (recorded in join).
net::Task<bool> drain_pipe(const Direction& d, const net::Pipe& pipe, size_t left, uint64_t idle_ms,
                           Join& join) {
  net::Reactor& reactor = d.to.reactor();
  while (left > 0) {
    const long out = co_await d.to.splice_out(pipe.read_fd(), left, reactor.now_ms() + idle_ms);
    if (out <= 0) {
      join.fail(out == 0 ? -EPIPE : out, !d.from_client);
      co_return false;
    }
    left -= static_cast<size_t>(out);
    *d.delivered += static_cast<uint64_t>(out);
    join.last_activity_ms = reactor.now_ms();
  }
  co_return true;
}

net::Task<void> pump(Direction d, uint64_t idle_ms, Join& join) {
  net::Reactor& reactor = d.from.reactor();
  net::Pipe pipe;
  bool clean = false;
  std::string first;  // while d.check_first
  if (!pipe.ok()) join.fail(-errno, false);
  while (pipe.ok()) {
    const size_t room = d.check_first ? kProxySignatureBytes - first.size() : pipe.capacity();
    const long in = co_await d.from.splice_in(pipe.write_fd(), room,
                                              idle_ms ? join.last_activity_ms + idle_ms : 0);
    // Silent this way, but the other way moved bytes meanwhile: wait on `from` again.
    if (in == -ETIMEDOUT && reactor.now_ms() < join.last_activity_ms + idle_ms) continue;
    if (in == -ETIMEDOUT) {
      join.totals.idle = true;
      break;
    }
    if (in <= 0) {
      clean = in == 0;
      if (!clean) join.fail(in, d.from_client);
      break;
    }
    join.last_activity_ms = reactor.now_ms();
    if (d.check_first) {
      const First step =
          co_await check_first(d, pipe, static_cast<size_t>(in), first, idle_ms, join);
      if (step == First::kFail) break;
      d.check_first = step == First::kMore;
      continue;
    }
    if (!co_await drain_pipe(d, pipe, static_cast<size_t>(in), idle_ms, join)) break;
  }
  if (clean) {
    ::shutdown(d.to.fd(), SHUT_WR);  // the half-close goes on; the other direction continues
  } else {
    // Wake the other direction: a failure or an idle end ends the connection.
    ::shutdown(d.from.fd(), SHUT_RDWR);
    ::shutdown(d.to.fd(), SHUT_RDWR);
  }
  join.arrive();
}

}  // namespace

net::Task<SpliceTotals> splice_pair(net::Socket& client, net::Socket& backend, uint64_t idle_ms,
                                    bool refuse_proxy_header) {
  Join join;
  join.last_activity_ms = client.reactor().now_ms();
  net::spawn(
      pump({client, backend, true, &join.totals.to_backend, refuse_proxy_header}, idle_ms, join));
  net::spawn(pump({backend, client, false, &join.totals.to_client}, idle_ms, join));
  co_await join;
  co_return join.totals;
}

}  // namespace usher::proxy::l4
