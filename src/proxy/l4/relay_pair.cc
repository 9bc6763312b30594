#include "proxy/l4/relay_pair.h"

#include <sys/socket.h>

#include <cerrno>
#include <coroutine>
#include <string>

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
  RelayTotals totals;

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
  bool check_first;  // the PROXY signature check of the client's first bytes
};

// Writes bytes read from `from` on to `to`; false after a failure (recorded in join).
net::Task<bool> write_on(const Direction& d, std::string_view bytes, uint64_t idle_ms, Join& join) {
  net::Reactor& reactor = d.to.reactor();
  if (!co_await l7::write_all(d.to, bytes, {}, reactor.now_ms() + idle_ms)) {
    join.fail(-EPIPE, !d.from_client);
    co_return false;
  }
  *d.delivered += bytes.size();
  join.last_activity_ms = reactor.now_ms();
  co_return true;
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

// The client's first bytes gathered in `first` until they show whether a PROXY header begins
// there, then written on. kMore while too few have come, kPass once written, kFail after a
// failure or a header.
enum class First : uint8_t { kMore, kPass, kFail };
net::Task<First> check_first(const Direction& d, std::string& first, uint64_t idle_ms, Join& join) {
  const ProxySignature signature = proxy_signature(first);
  if (signature == ProxySignature::kYes) {
    join.fail(-EPROTO, true);
    co_return First::kFail;
  }
  if (signature == ProxySignature::kMaybe) co_return First::kMore;
  co_return co_await write_on(d, first, idle_ms, join) ? First::kPass : First::kFail;
}

// How a read's result ends a direction: false when it does (EOF, failure or idleness).
bool keep_going(long in, const Direction& d, Join& join, bool& clean) {
  if (in > 0) {
    join.last_activity_ms = d.from.reactor().now_ms();
    return true;
  }
  if (in == -ETIMEDOUT) {
    join.totals.idle = true;
  } else {
    clean = in == 0;
    if (!clean) join.fail(in, d.from_client);
  }
  return false;
}

uint64_t deadline(const Join& join, uint64_t idle_ms) {
  return idle_ms ? join.last_activity_ms + idle_ms : 0;
}

// Silent this way, but the other way moved bytes meanwhile: wait on `from` again.
bool other_way_moved(long in, const Direction& d, uint64_t idle_ms, const Join& join) {
  return in == -ETIMEDOUT && idle_ms && d.from.reactor().now_ms() < join.last_activity_ms + idle_ms;
}

// A direction that always finds bytes on one side and room on the other could keep its loop
// from everything else: a splice that moves bytes completes without suspending, and on epoll a
// write waits only for the end of the loop turn, whose flush resumes it in that same turn. After
// this many bytes in a row it waits for `from` to be readable, which completes at the next turn
// at the earliest (Socket::wait_readable), so the worker's other connections get theirs. On
// io_uring a copied write completes in a later turn anyway, and waiting on a socket whose bytes
// the standing receive already took could wait for bytes that are never sent.
constexpr uint64_t kTurnBudget = 1 << 20;

// The direction's bytes since it last gave the loop back, and when to give it back.
struct Budget {
  uint64_t since_yield = 0;
  bool applies = true;
  bool spent(long moved) {
    if (!applies || moved <= 0) return false;
    since_yield += static_cast<uint64_t>(moved);
    if (since_yield < kTurnBudget) return false;
    since_yield = 0;
    return true;
  }
};

// With `relay: auto`, a direction that read at least kStreamingReadBytes this many times in a
// row is a stream, and moves on to splice(2); request/response messages are smaller. Not "a
// full buffer": on io_uring a reader that keeps up gets what the standing receive brought since
// the last turn, which is rarely a whole buffer even for a stream.
constexpr int kStreamingReads = 4;
constexpr long kStreamingReadBytes = 8 * 1024;

enum class CopyEnd : uint8_t { kFailed, kClean, kStreaming };

// A direction waits holding no buffer (an idle connection costs none) and takes one only for
// the bytes that came. `adaptive`: it hands over (kStreaming) once the bytes come as a stream.
net::Task<CopyEnd> copy_direction(Direction& d, net::BufferPool& buffers, uint64_t idle_ms,
                                  Join& join, bool adaptive) {
  std::string first;
  bool clean = false;
  int large_reads = 0;
  Budget budget{0, std::string_view(d.from.reactor().name()) != "io_uring"};
  while (true) {
    long in = co_await d.from.readable(deadline(join, idle_ms));
    if (other_way_moved(in, d, idle_ms, join)) continue;
    net::Buffer buffer;
    if (in >= 0) {  // readable: 0, or a poll's event mask on io_uring's one-shot path
      buffer = buffers.take();
      const size_t room = d.check_first ? kProxySignatureBytes - first.size() : buffer.capacity();
      in = d.from.try_read(buffer.data(), room);
      if (in == -EAGAIN) continue;
    }
    if (!keep_going(in, d, join, clean)) break;
    const std::string_view bytes(buffer.data(), static_cast<size_t>(in));
    if (d.check_first) {
      first.append(bytes);
      const First step = co_await check_first(d, first, idle_ms, join);
      if (step == First::kFail) break;
      d.check_first = step == First::kMore;
    } else if (!co_await write_on(d, bytes, idle_ms, join)) {
      break;
    }
    buffer.release();
    large_reads = in >= kStreamingReadBytes ? large_reads + 1 : 0;
    if (adaptive && large_reads == kStreamingReads) co_return CopyEnd::kStreaming;
    if (budget.spent(in)) co_await d.from.wait_readable(deadline(join, idle_ms));
  }
  co_return clean ? CopyEnd::kClean : CopyEnd::kFailed;
}

net::Task<bool> splice_direction(Direction& d, uint64_t idle_ms, Join& join) {
  net::Pipe pipe;
  std::string first;
  bool clean = false;
  Budget budget;
  if (!pipe.ok()) join.fail(-errno, false);
  while (pipe.ok()) {
    const size_t room = d.check_first ? kProxySignatureBytes - first.size() : pipe.capacity();
    const long in = co_await d.from.splice_in(pipe.write_fd(), room, deadline(join, idle_ms));
    if (other_way_moved(in, d, idle_ms, join)) continue;
    if (!keep_going(in, d, join, clean)) break;
    if (d.check_first) {
      if (!take_from_pipe(pipe, static_cast<size_t>(in), first)) {
        join.fail(-EIO, false);
        break;
      }
      const First step = co_await check_first(d, first, idle_ms, join);
      if (step == First::kFail) break;
      d.check_first = step == First::kMore;
    } else if (!co_await drain_pipe(d, pipe, static_cast<size_t>(in), idle_ms, join)) {
      break;
    }
    if (budget.spent(in)) co_await d.from.wait_readable(deadline(join, idle_ms));
  }
  co_return clean;
}

// A copying direction turned stream: the reactor stops receiving for `from`, what it had
// received goes on first (in order), then splice(2) takes the socket's bytes.
net::Task<bool> splice_from_now(Direction& d, net::BufferPool& buffers, uint64_t idle_ms,
                                Join& join) {
  const long held = co_await d.from.end_receive();
  if (held < 0) {  // cancelled: the connection is being torn down
    join.fail(held, d.from_client);
    co_return false;
  }
  if (held > 0) {
    bool clean = false;
    while (true) {
      net::Buffer buffer = buffers.take();
      const long in = d.from.try_read(buffer.data(), buffer.capacity());
      if (in == -EAGAIN) break;
      if (!keep_going(in, d, join, clean)) co_return clean;
      if (!co_await write_on(d, {buffer.data(), static_cast<size_t>(in)}, idle_ms, join)) {
        co_return false;
      }
    }
  }
  ++join.totals.spliced;
  co_return co_await splice_direction(d, idle_ms, join);
}

// A failure ends both sides with a reset, so that no peer takes a cut stream for a complete one
// (a shutdown would send it a FIN first). Disconnecting (connect to AF_UNSPEC) resets the
// socket while its fd stays open, and fails whatever the other direction waits for on it.
void reset(net::Socket& socket) {
  sockaddr unspecified{};
  unspecified.sa_family = AF_UNSPEC;
  ::connect(socket.fd(), &unspecified, sizeof unspecified);
}

net::Task<void> pump(Direction d, net::BufferPool& buffers, RelayOptions options, Join& join) {
  bool clean = false;
  if (options.mode == config::Relay::kSplice) {
    clean = co_await splice_direction(d, options.idle_ms, join);
  } else {
    const bool adaptive = options.mode == config::Relay::kAuto;
    const CopyEnd end = co_await copy_direction(d, buffers, options.idle_ms, join, adaptive);
    clean = end == CopyEnd::kStreaming ? co_await splice_from_now(d, buffers, options.idle_ms, join)
                                       : end == CopyEnd::kClean;
  }
  if (clean) {
    ::shutdown(d.to.fd(), SHUT_WR);  // the half-close goes on; the other direction continues
  } else if (join.totals.error == 0) {
    // An idle end closes the connection the ordinary way, which wakes the other direction.
    ::shutdown(d.from.fd(), SHUT_RDWR);
    ::shutdown(d.to.fd(), SHUT_RDWR);
  } else {
    reset(d.from);
    reset(d.to);
  }
  join.arrive();
}

}  // namespace

net::Task<RelayTotals> relay_pair(net::Socket& client, net::Socket& backend,
                                  net::BufferPool& buffers, RelayOptions options) {
  Join join;
  join.last_activity_ms = client.reactor().now_ms();
  net::spawn(pump({client, backend, true, &join.totals.to_backend, options.refuse_proxy_header},
                  buffers, options, join));
  net::spawn(pump({backend, client, false, &join.totals.to_client, false}, buffers, options, join));
  co_await join;
  co_return join.totals;
}

}  // namespace usher::proxy::l4
