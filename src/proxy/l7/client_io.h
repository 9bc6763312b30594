#pragma once
// Writes to the client of an HTTP/1 connection: every byte sent to it goes through here, so
// that bytes sent are counted in one place. Worker thread only.
#include <cstdint>
#include <string_view>

#include "net/task.h"
#include "proxy/l7/session.h"
#include "proxy/l7/stream.h"

namespace usher::proxy::l7 {

// What becomes of the client connection after a request.
enum class Next : uint8_t { kKeepAlive, kClose, kAbort };

// Not a coroutine itself: no frame of its own. Counts the bytes as handed to the socket (a
// failed write ends the connection anyway).
inline net::Task<bool> write_client(Client& c, std::string_view a, std::string_view b,
                                    uint64_t deadline_ms) {
  c.current.bytes_sent += a.size() + b.size();
  return c.side().write_all(a, b, deadline_ms);
}

// Bytes from the client (decrypted on HTTPS): bytes, 0 when it closed, or -errno.
inline ReadOp read_client(Client& c, char* buffer, size_t length, uint64_t deadline_ms) {
  return c.side().read(buffer, length, deadline_ms);
}

// HTTPS: the handshake, within timeouts.tls_handshake; false when the connection should end
// (counted by reason; a plain HTTP request is answered 400 first).
net::Task<bool> accept_tls(Client& c, const tls::ServerContext& context);

// usher's own error response; the connection then closes gently (linger_close).
// `extra_fields`: whole lines of usher's own to add (X-Usher-Pick).
net::Task<bool> send_status(Client& c, int status, std::string_view extra_fields = {});
net::Task<Next> fail(Client& c, int status);
// fail() when there is a status to send, else just the close (a client that has gone). Not
// `status ? co_await fail(...) : kClose`: GCC 12 evaluates a co_await in a conditional
// expression's unchosen branch too, which sent a 500 to clients that had gone.
net::Task<Next> fail_or_close(Client& c, int status);

// After an error response the client may still be sending; closing with unread bytes would
// reset the connection and could destroy the response before the client reads it. So: stop
// writing, discard what arrives until the client closes, 5 s of silence or 30 s in all, then
// close (RFC 9112 section 9.6; nginx's lingering close).
net::Task<void> linger_close(Client& c);

}  // namespace usher::proxy::l7
