#include "proxy/l7/client_io.h"

#include <sys/socket.h>

#include "proxy/l7/error_response.h"
#include "proxy/worker.h"

namespace usher::proxy::l7 {

net::Task<bool> send_status(Client& c, int status) {
  c.linger = true;
  c.current.status = status;
  co_return co_await write_client(c, error_response(status), {}, c.after(c.config().timeouts.body));
}

net::Task<Next> fail(Client& c, int status) {
  co_await send_status(c, status);
  co_return Next::kClose;
}

net::Task<bool> accept_tls(Client& c, const tls::ServerContext& context) {
  metrics::ListenerCounters& counters =
      c.worker.metrics().listeners[c.worker.current().listeners[c.endpoint.listener].metric_id];
  c.tls = std::make_unique<tls::Stream>(context.new_connection(), c.socket);
  const auto& timeouts = c.worker.current().config().timeouts;
  const tls::HandshakeFailure failure = co_await c.tls->handshake(c.after(timeouts.tls_handshake));
  if (failure == tls::HandshakeFailure::kNone) {
    counters.tls_handshakes.add();
    co_return true;
  }
  counters.tls_failures[static_cast<size_t>(failure) - 1].add();
  if (failure == tls::HandshakeFailure::kPlainHttp) {
    // As nginx's 497: say what went wrong in words a person reading curl's output understands.
    c.tls.reset();
    co_await write_all(c.socket, plain_http_on_tls_response(), {}, c.after(timeouts.body));
    c.linger = true;
  }
  co_return false;
}

net::Task<void> linger_close(Client& c) {
  constexpr uint64_t kLingerMs = 2000;
  constexpr size_t kMaxDiscard = 1 << 20;
  if (c.tls) co_await c.tls->close(c.worker.reactor().now_ms() + kLingerMs);
  ::shutdown(c.socket.fd(), SHUT_WR);
  if (!c.in) c.in = c.worker.buffers().take();
  const uint64_t deadline = c.worker.reactor().now_ms() + kLingerMs;
  for (size_t discarded = 0; discarded < kMaxDiscard;) {
    long n = co_await c.socket.read(c.in.data(), c.in.capacity(), deadline);
    if (n <= 0) break;
    discarded += static_cast<size_t>(n);
  }
}

}  // namespace usher::proxy::l7
