#include "proxy/l7/client_io.h"

#include <fmt/format.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>

#include "proxy/l7/error_response.h"
#include "proxy/worker.h"

namespace usher::proxy::l7 {

net::Task<bool> send_status(Client& c, int status, std::string_view extra_fields) {
  c.linger = true;
  c.own_response = true;
  c.current.status = status;
  const std::string_view response = error_response(status);
  const uint64_t deadline = c.after(c.config().timeouts.body);
  if (c.current.request_id.empty() && extra_fields.empty()) {
    co_return co_await write_client(c, response, {}, deadline);
  }
  // The request's id goes right after the status line, as in every other response of usher's.
  const size_t line = response.find("\r\n") + 2;
  char head[768];
  const std::string_view id_name = c.current.request_id.empty() ? "" : "X-Request-Id: ";
  const std::string_view id_end = c.current.request_id.empty() ? "" : "\r\n";
  const auto written = fmt::format_to_n(head, sizeof head, "{}{}{}{}{}", response.substr(0, line),
                                        id_name, c.current.request_id, id_end, extra_fields);
  if (written.size > sizeof head) co_return co_await write_client(c, response, {}, deadline);
  co_return co_await write_client(c, {head, written.size}, response.substr(line), deadline);
}

net::Task<Next> fail(Client& c, int status) {
  co_await send_status(c, status);
  co_return Next::kClose;
}

net::Task<Next> fail_or_close(Client& c, int status) {
  if (status) co_await send_status(c, status);
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
    c.tls_client_subject = c.tls->client_subject();
    c.tls_facts = {c.tls->version(), c.tls->cipher(), c.tls->server_name(), c.tls_client_subject};
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

namespace {

// nginx's lingering_time and lingering_timeout defaults: a client gets 30 s in all to finish
// sending what it had started (a body it cannot take back, say) and read the answer, and each
// silence may last 5 s. Time bounds it, not bytes: discarding is a copy, and a body of any size
// could have been sent as an accepted request just as well.
constexpr uint64_t kLingerMs = 30'000;
constexpr uint64_t kLingerSilenceMs = 5'000;

// Discards what the client has sent so far; false once it closed (or failed).
bool discard_unread(Client& c) {
  net::Buffer scratch = c.worker.buffers().take();
  while (true) {
    long n = c.socket.try_read(scratch.data(), scratch.capacity());
    if (n == -EAGAIN) return true;
    if (n <= 0) return false;
  }
}

}  // namespace

net::Task<void> linger_close(Client& c) {
  if (c.tls) co_await c.tls->close(c.worker.reactor().now_ms() + kLingerSilenceMs);
  ::shutdown(c.socket.fd(), SHUT_WR);
  c.in.release();
  const uint64_t end = c.worker.reactor().now_ms() + kLingerMs;
  while (true) {
    const uint64_t now = c.worker.reactor().now_ms();
    if (now >= end) break;
    // Waits holding no buffer, so lingering connections cost what idle ones do.
    long ready = co_await c.socket.readable(std::min(end, now + kLingerSilenceMs));
    if (ready < 0 || !discard_unread(c)) break;
  }
}

}  // namespace usher::proxy::l7
