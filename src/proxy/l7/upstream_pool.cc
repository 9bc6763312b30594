#include "proxy/l7/upstream_pool.h"

namespace usher::proxy::l7 {

UpstreamPool::UpstreamPool(size_t max_idle_per_backend)
    : max_idle_per_backend_(max_idle_per_backend) {}

void UpstreamPool::track(uint32_t backend_id) {
  if (backend_id >= idle_.size()) idle_.resize(backend_id + 1);
  idle_[backend_id].reserve(max_idle_per_backend_);
}

std::unique_ptr<UpstreamConn> UpstreamPool::take(uint32_t backend_id) {
  if (backend_id >= idle_.size()) return nullptr;
  auto& list = idle_[backend_id];
  while (!list.empty()) {
    std::unique_ptr<UpstreamConn> conn = std::move(list.back());
    list.pop_back();
    // A parked connection has nothing to say; a close or stray bytes mean it is finished.
    if (conn->socket.reactor().peer_closed(conn->socket)) continue;
    if (conn->tls && conn->tls->buffered()) continue;
    return conn;
  }
  return nullptr;
}

void UpstreamPool::give_back(std::unique_ptr<UpstreamConn> conn) {
  track(conn->backend_id);  // a backend added through the admin API since the generation began
  auto& list = idle_[conn->backend_id];
  if (list.size() >= max_idle_per_backend_) return;
  if (conn->tls) conn->tls->release_input();  // an idle connection holds no buffer
  list.push_back(std::move(conn));
}

void UpstreamPool::clear() {
  for (auto& list : idle_) list.clear();
}

}  // namespace usher::proxy::l7
