// A udp session's life after it opened: its reply loop waits on the backend's socket with no
// buffer (a readiness wait whose deadline is the idle expiry), takes the replies in a batch and
// queues them for the client, to leave through the listener's socket when the turn ends.
// Whoever ends a session (idle expiry, the backend refusing, the listener closing) takes it out
// of the table; its reply loop then gives back what it held.
#include "proxy/l4/udp_sessions.h"

#include <netinet/in.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "proxy/worker.h"

namespace usher::proxy::l4 {

ClientKey ClientKey::of(const sockaddr* address) {
  ClientKey key;
  key.family = address->sa_family;
  if (address->sa_family == AF_INET) {
    const auto* v4 = reinterpret_cast<const sockaddr_in*>(address);
    std::memcpy(key.ip.data(), &v4->sin_addr, 4);
    key.port = v4->sin_port;
  } else if (address->sa_family == AF_INET6) {
    const auto* v6 = reinterpret_cast<const sockaddr_in6*>(address);
    std::memcpy(key.ip.data(), &v6->sin6_addr, 16);
    key.port = v6->sin6_port;
  }
  return key;
}

size_t ClientKeyHash::operator()(const ClientKey& key) const noexcept {
  return XXH3_64bits_withSeed(&key, sizeof key, seed);
}

Session::Session(Sessions& owner_, net::Reactor& reactor, GenerationRef generation_,
                 PoolState& pool_, uint32_t backend_, const sockaddr* client_, int backend_fd)
    : owner(owner_),
      generation(std::move(generation_)),
      pool(pool_),
      backend(backend_),
      key(ClientKey::of(client_)),
      client_length(client_->sa_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in)),
      socket(reactor, backend_fd) {
  std::memcpy(&client, client_, client_length);
}

Sessions::Sessions(Worker& worker, Endpoint& endpoint)
    : worker_(worker),
      endpoint_(endpoint),
      outbox_(worker.outbox()),
      table_(16, ClientKeyHash{worker.random()}) {}

net::Task<void> Sessions::relay_replies(Session& s) {
  while (!s.ended) {
    const long ready = co_await s.socket.wait_readable(s.last_active_ms + s.idle_ms);
    if (s.ended) break;
    if (ready == -ETIMEDOUT) {
      if (worker_.reactor().now_ms() >= s.last_active_ms + s.idle_ms) break;
      continue;  // the client sent meanwhile: a later expiry
    }
    if (ready < 0) break;
    constexpr unsigned kBatch = 16;
    const int received = s.socket.receive_batch(outbox_.receiving(kBatch), kBatch);
    if (received == -EAGAIN) continue;
    if (received < 0) {
      // An ICMP port unreachable: nothing listens there (any other error ends the session alone).
      if (received == -ECONNREFUSED) backend_failed(s);
      break;
    }
    if (!std::exchange(s.answered, true)) {
      s.pool.record_outcome(s.backend, false, worker_.reactor().now_ms());
    }
    for (int i = 0; i < received; ++i) outbox_.to_client(static_cast<unsigned>(i), s);
    s.last_active_ms = worker_.reactor().now_ms();
  }
  finish(s);
}

void Sessions::backend_failed(Session& session) {
  if (session.ended) return;
  session.pool.record_outcome(session.backend, true, worker_.reactor().now_ms());
  end(session);
}

void Sessions::end(Session& session) {
  if (std::exchange(session.ended, true)) return;
  table_.erase(session.key);
  // Its reply loop is waiting on the socket (or about to resume): the cancel makes sure it wakes.
  worker_.reactor().cancel(session.socket);
}

void Sessions::close() {
  while (!table_.empty()) end(*table_.begin()->second);
  release();
}

// The reply loop's last step: the session gives back its backend place, its max_sessions place
// and its generation (the last, since the pool lives in it), and the table may go with it.
void Sessions::finish(Session& session) {
  end(session);
  outbox_.forget(session);
  session.pool.live.end(session.backend);
  session.counters->active_sessions.add(-1);
  delete &session;
  release();
}

void Sessions::release() {
  if (--holders_ == 0) delete this;
}

}  // namespace usher::proxy::l4
