#include <sys/random.h>

#include <unordered_map>

#include "session_store.h"

namespace session_app {

using usher::Expected;
using usher::net::Task;

std::string new_session_id() {
  unsigned char bytes[16];
  size_t got = 0;
  while (got < sizeof bytes) {
    ssize_t n = getrandom(bytes + got, sizeof bytes - got, 0);
    if (n > 0) got += static_cast<size_t>(n);
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id;
  for (unsigned char b : bytes) {
    id += kHex[b >> 4];
    id += kHex[b & 15];
  }
  return id;
}

namespace {

class MemoryStore final : public SessionStore {
 public:
  MemoryStore(usher::net::Reactor& reactor, uint64_t ttl_ms) : reactor_(reactor), ttl_ms_(ttl_ms) {}

  Task<Expected<std::string>> create(std::string user) override {
    std::string id = new_session_id();
    // Fields set in place: GCC 12 -O2 warns falsely (maybe-uninitialized) on a temporary Entry
    // held in the coroutine frame.
    Entry& entry = sessions_[id];
    entry.session.visits = 0;
    entry.session.user = std::move(user);
    entry.expires_ms = reactor_.now_ms() + ttl_ms_;
    co_return id;
  }

  Task<Expected<std::optional<Session>>> visit(std::string id) override {
    auto it = sessions_.find(id);
    if (it == sessions_.end() || it->second.expires_ms <= reactor_.now_ms()) {
      if (it != sessions_.end()) sessions_.erase(it);
      co_return std::optional<Session>{};
    }
    ++it->second.session.visits;
    it->second.expires_ms = reactor_.now_ms() + ttl_ms_;
    co_return std::optional<Session>{it->second.session};
  }

  Task<Expected<bool>> remove(std::string id) override { co_return sessions_.erase(id) > 0; }

 private:
  struct Entry {
    Session session;
    uint64_t expires_ms;
  };
  usher::net::Reactor& reactor_;
  uint64_t ttl_ms_;
  std::unordered_map<std::string, Entry> sessions_;
};

}  // namespace

std::unique_ptr<SessionStore> make_memory_store(usher::net::Reactor& reactor, uint64_t ttl_ms) {
  return std::make_unique<MemoryStore>(reactor, ttl_ms);
}

}  // namespace session_app
