// A udp listener's side towards the backends: datagrams are read from the listener's socket in
// batches (recvmmsg) and queued for the socket of their client's session. A new client is
// admitted (allow/deny lists, max_sessions), given a backend by the pool's balancer and a socket
// connected to it (udp_sessions.cc has the rest of a session's life).
#include "proxy/l4/udp.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include "balance/picker.h"
#include "codec/l4/proxy_protocol.h"
#include "proxy/l4/udp_sessions.h"
#include "proxy/pool_queue.h"
#include "proxy/worker.h"

namespace usher::proxy::l4 {

namespace {

using metrics::UdpDrop;

// A non-blocking udp socket connected to `to`, or -1: connect(2) on a datagram socket only
// fixes its peer, so the kernel hands it that peer's datagrams alone.
int connected_socket(const Address& to) {
  const int fd = ::socket(to.family(), SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (::connect(fd, to.sockaddr_ptr(), to.length()) < 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// The pick key of a hashing algorithm: the client's IP as text, hashed as an HTTP listener
// hashes its client-ip, so that a client maps alike whichever listener it comes through.
uint64_t client_key_hash(const sockaddr* client) {
  char ip[INET6_ADDRSTRLEN];
  const size_t length = format_ip(client, ip, sizeof ip);
  return balance::hash_key({ip, length});
}

}  // namespace

void Sessions::receive() {
  constexpr unsigned kBatch = 32;
  const int received = endpoint_.socket->receive_batch(outbox_.receiving(kBatch), kBatch);
  if (received <= 0) return;
  const auto count = static_cast<unsigned>(received);
  for (unsigned first = 0; first < count;) {
    const ClientKey key = ClientKey::of(outbox_.sender(first));
    unsigned end = first + 1;
    while (end < count && ClientKey::of(outbox_.sender(end)) == key) ++end;
    if (Session* session = find_or_open(key, outbox_.sender(first), end - first)) {
      for (unsigned i = first; i < end; ++i) outbox_.to_backend(i, *session, session->proxy_header);
      session->last_active_ms = worker_.reactor().now_ms();
    }
    first = end;
  }
}

int Sessions::listener_fd() const {
  return endpoint_.socket->fd();
}

// The client's session, or a new one; null when the datagrams are dropped (and counted so).
Session* Sessions::find_or_open(const ClientKey& key, const sockaddr* client, unsigned datagrams) {
  if (auto found = table_.find(key); found != table_.end()) return found->second;
  const ListenerRoutes& routes = worker_.current().listeners[endpoint_.listener];
  metrics::UdpCounters& counters = worker_.metrics().listeners[routes.metric_id].udp;
  Admission admission;
  if (auto refused = Admission::admit(routes.guard, IpBytes::from_sockaddr(client), admission)) {
    const bool denied = *refused == static_cast<uint8_t>(metrics::Refusal::kDenied);
    counters.dropped[static_cast<size_t>(denied ? UdpDrop::kDenied : UdpDrop::kMaxSessions)].add(
        datagrams);
    return nullptr;
  }
  PoolState& pool = *routes.targets.front().pool;
  const balance::Balancer& balancer = pool.balancer();
  const uint64_t hash =
      balancer.key_source() == balance::KeySource::kHash ? client_key_hash(client) : 0;
  balance::Candidates candidates =
      balancer.candidates(hash, worker_.random(), worker_.reactor().now_ms());
  const uint32_t backend = take_backend(pool, candidates);  // counted active on it from here
  if (backend == balance::kNoBackend) {
    counters.dropped[static_cast<size_t>(UdpDrop::kNoBackend)].add(datagrams);
    return nullptr;
  }
  const int fd = connected_socket(pool.slot(backend).address);
  if (fd < 0) {
    pool.live.end(backend);
    counters.dropped[static_cast<size_t>(UdpDrop::kSendFailed)].add(datagrams);
    return nullptr;
  }
  auto* session =
      new Session(*this, worker_.reactor(), worker_.generation(), pool, backend, client, fd);
  session->admission = std::move(admission);
  session->counters = &counters;
  session->idle_ms = static_cast<uint64_t>(routes.config.session_idle.count());
  session->last_active_ms = worker_.reactor().now_ms();
  if (pool.config.proxy_protocol == config::ProxyProtocolVersion::kV2) {
    // Written once for the session; each of its datagrams then begins with it.
    session->proxy_header = usher::l4::proxy_v2(
        Address::from_sockaddr(reinterpret_cast<const sockaddr*>(&session->client),
                               session->client_length),
        endpoint_.listen, usher::l4::Transport::kDatagram);
  }
  table_.emplace(key, session);
  ++holders_;
  counters.sessions.add();
  counters.active_sessions.add(1);
  net::spawn(relay_replies(*session));
  return session;
}

net::Task<void> serve_udp(Worker& worker, Endpoint& endpoint) {
  auto* sessions = new Sessions(worker, endpoint);  // freed by its last holder
  net::Socket& socket = *endpoint.socket;
  while (socket.is_open()) {
    sessions->receive();
    // One batch a wake: a full one is followed by the next in the next loop turn, so that the
    // turn's datagrams go out and replies and other listeners get their turn in between.
    const long ready = co_await socket.wait_readable(0);
    if (ready == -ECANCELED || !socket.is_open()) break;
  }
  sessions->close();
}

}  // namespace usher::proxy::l4
