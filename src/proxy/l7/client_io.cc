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

}  // namespace usher::proxy::l7
