#pragma once
// The sessions of one udp listener on one worker. A session is a client's address and port, the
// backend chosen for it and a socket connected to that backend, so that the backend's replies
// arrive on a socket of their own and go back to that client alone, through the listener's
// socket. Per worker is enough: the kernel's SO_REUSEPORT hash keeps a client's datagrams on
// one worker's socket. Datagrams both ways wait in the worker's Outbox for the end of the loop
// turn. Worker thread only; nothing here is shared with other workers but the
// listener's count of sessions (max_sessions) and the pool's live counters.
#include <sys/socket.h>

#include <array>
#include <cstdint>
#include <string>
#include <unordered_map>

#include "metrics/counters.h"
#include "net/socket.h"
#include "net/task.h"
#include "proxy/generation.h"
#include "proxy/guards.h"
#include "proxy/l4/outbox.h"

namespace usher::proxy {
class Worker;
struct Endpoint;
}  // namespace usher::proxy

namespace usher::proxy::l4 {

// A client as the session table knows it: its address and port.
struct ClientKey {
  std::array<uint8_t, 16> ip{};  // an IPv4 address in the first four bytes
  uint16_t port = 0;
  uint16_t family = 0;
  bool operator==(const ClientKey&) const = default;
  static ClientKey of(const sockaddr* address);
};

// XXH3 with a seed of each table's own, so that nobody can choose addresses that collide.
struct ClientKeyHash {
  uint64_t seed = 0;
  size_t operator()(const ClientKey& key) const noexcept;
};

class Sessions;

struct Session {
  Session(Sessions& owner, net::Reactor& reactor, GenerationRef generation, PoolState& pool,
          uint32_t backend, const sockaddr* client, int backend_fd);

  Sessions& owner;
  GenerationRef generation;  // keeps `pool` alive; released last
  PoolState& pool;
  uint32_t backend;
  Admission admission;  // its place under the listener's max_sessions
  metrics::UdpCounters* counters = nullptr;
  ClientKey key;
  sockaddr_storage client{};
  socklen_t client_length = 0;
  uint64_t idle_ms = 0;
  uint64_t last_active_ms = 0;
  std::string proxy_header;  // empty: the pool sends no PROXY header
  bool answered = false;     // a reply came: the backend counted as serving, once
  bool ended = false;        // out of the table; its reply loop finishes it
  net::Socket socket;        // connected to the backend
};

class Sessions {
 public:
  // Runs while the listener's socket is open, and after that while any of its sessions lives.
  Sessions(Worker& worker, Endpoint& endpoint);
  Sessions(const Sessions&) = delete;
  Sessions& operator=(const Sessions&) = delete;

  // Receives a batch of datagrams from the listener's socket and queues each for its client's
  // session's backend, opening a session for each new client that the listener admits.
  void receive();
  int listener_fd() const;
  // The backend's port is closed (an ICMP port unreachable came back): a failure of the backend
  // for the pool's passive checks, and the end of the session.
  void backend_failed(Session& session);
  // The listener's socket closed: every session ends, and the table goes with the last one.
  void close();

 private:
  Session* find_or_open(const ClientKey& key, const sockaddr* client, unsigned datagrams);
  void end(Session& session);
  net::Task<void> relay_replies(Session& session);
  void finish(Session& session);
  void release();

  Worker& worker_;
  Endpoint& endpoint_;
  Outbox& outbox_;
  std::unordered_map<ClientKey, Session*, ClientKeyHash> table_;
  uint32_t holders_ = 1;  // the listener's loop and each session's reply loop
};

}  // namespace usher::proxy::l4
