#pragma once
// Where a logged-in user's session lives. The application server only ever talks to this
// interface, so the same server runs with its sessions in its own memory or in Redis.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "base/address.h"
#include "base/expected.h"
#include "net/reactor.h"
#include "net/task.h"

namespace session_app {

struct Session {
  std::string user;
  int64_t visits = 0;  // how many times GET /me was answered for this session, on any server
};

class SessionStore {
 public:
  virtual ~SessionStore() = default;
  // Each yields an error (503 for the client) when the store cannot answer in time.
  virtual usher::net::Task<usher::Expected<std::string>> create(std::string user) = 0;  // -> id
  // Counts one visit; nullopt when the session does not exist (never did, expired, logged out).
  virtual usher::net::Task<usher::Expected<std::optional<Session>>> visit(std::string id) = 0;
  virtual usher::net::Task<usher::Expected<bool>> remove(std::string id) = 0;
};

// Sessions in this process's memory: lost when the process dies, invisible to the other
// servers. The broken pattern, kept on purpose to show what goes wrong behind a balancer.
std::unique_ptr<SessionStore> make_memory_store(usher::net::Reactor& reactor, uint64_t ttl_ms);

// Sessions in Redis, shared by every server, expiring ttl_ms after the last visit. No call
// waits longer than timeout_ms; an unreachable Redis is an error, and the next call retries.
std::unique_ptr<SessionStore> make_redis_store(usher::net::Reactor& reactor,
                                               const usher::Address& redis, uint64_t timeout_ms,
                                               uint64_t ttl_ms);

// 128 random bits as 32 hex digits: unguessable, so a session id cannot be forged.
std::string new_session_id();

}  // namespace session_app
