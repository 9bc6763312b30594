#include "proxy/worker.h"

#include <malloc.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <random>

#include "base/allocation_count.h"
#include "net/task.h"
#include "proxy/l7/http_session.h"

namespace usher::proxy {

namespace {

constexpr size_t kMaxIdleUpstreamsPerBackend = 1024;

int bind_reuseport(const Address& address, std::string& error) {
  int fd = ::socket(address.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    error = std::string("socket: ") + std::strerror(errno);
    return -1;
  }
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  if (::bind(fd, address.sockaddr_ptr(), address.length()) < 0 || ::listen(fd, 4096) < 0) {
    error = "cannot listen on " + address.to_string() + ": " + std::strerror(errno);
    ::close(fd);
    return -1;
  }
  return fd;
}

net::Task<void> accept_loop(Worker& worker, net::Socket& listener, size_t listener_index) {
  while (true) {
    long fd = co_await listener.accept(0);
    if (fd == -ECANCELED || !listener.is_open()) break;
    if (fd < 0) {
      // Out of descriptors: pause instead of spinning on a listener that stays readable.
      if (fd == -EMFILE || fd == -ENFILE) {
        co_await net::sleep_until(worker.reactor(), worker.reactor().now_ms() + 100);
      }
      continue;
    }
    int one = 1;
    ::setsockopt(static_cast<int>(fd), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    net::spawn(l7::serve_http(worker, static_cast<int>(fd), listener_index));
  }
}

}  // namespace

size_t buffer_size_for(const config::Limits& limits) {
  // Room for the largest accepted head plus the fields usher adds when forwarding it.
  return std::max<size_t>(16 * 1024, limits.max_header_bytes + 4 * 1024);
}

Worker::Worker(const config::Config& config, std::vector<PoolState*> pools, uint32_t backend_count,
               metrics::Shard& metrics, log::Channel* access_log,
               std::unique_ptr<net::Reactor> reactor)
    : config_(config),
      pools_(std::move(pools)),
      metrics_(metrics),
      access_log_(access_log),
      reactor_(std::move(reactor)),
      buffers_(buffer_size_for(config.limits)),
      upstreams_(backend_count, kMaxIdleUpstreamsPerBackend),
      header_scratch_(config.limits.max_headers),
      random_state_(std::random_device{}() | 1) {
  sessions_.prev = sessions_.next = &sessions_;
  listeners_routes_.reserve(config.listeners.size());
  size_t first_route = 0;
  for (const config::Listener& listener : config.listeners) {
    listeners_routes_.emplace_back(listener, pools_, first_route);
    first_route += listener.routes.size();
  }
}

Worker::~Worker() {
  join();
  for (int fd : listen_fds_) {
    if (fd >= 0) ::close(fd);
  }
}

std::string Worker::bind_listeners() {
  std::string error;
  for (const config::Listener& listener : config_.listeners) {
    int fd = bind_reuseport(listener.listen, error);
    if (fd < 0) return error;
    listen_fds_.push_back(fd);
  }
  return {};
}

http1::HeadLimits Worker::head_limits() const {
  return {config_.limits.max_request_line, config_.limits.max_header_bytes,
          config_.limits.max_headers};
}

void Worker::start() {
  thread_ = std::thread([this] { run(); });
}

void Worker::run() {
  count_allocations_into(&metrics_.heap_allocations);
  for (size_t i = 0; i < listen_fds_.size(); ++i) {
    listeners_.push_back(
        std::make_unique<net::Socket>(*reactor_, std::exchange(listen_fds_[i], -1)));
  }
  for (size_t i = 0; i < listeners_.size(); ++i) {
    net::spawn(accept_loop(*this, *listeners_[i], i));
  }
  reactor_->run({[this] { on_wake(); }, [this] { on_idle(); }});
  upstreams_.clear();
  if (access_log_) access_log_->flush();
  count_allocations_into(nullptr);
}

void Worker::begin_drain() {
  drain_requested_.store(true, std::memory_order_relaxed);
  reactor_->wake();
}

void Worker::stop() {
  reactor_->stop();
}

void Worker::join() {
  if (thread_.joinable()) thread_.join();
}

void Worker::on_wake() {
  if (!drain_requested_.load(std::memory_order_relaxed) || draining_seen_) return;
  draining_seen_ = true;
  for (auto& listener : listeners_) {
    reactor_->cancel(*listener);
    listener->close();
  }
  for (SessionLink* s = sessions_.next; s != &sessions_; s = s->next) {
    if (s->idle) reactor_->cancel(*s->client);
  }
  upstreams_.clear();
}

void Worker::on_idle() {
  if (access_log_) access_log_->flush();
  // After a burst the allocator keeps the pages the burst needed (buffers, request frames,
  // closed connections); give them back while idle, at most once a second, so that idle
  // connections cost what they hold and not what the busiest moment needed.
  constexpr uint64_t kTrimIntervalMs = 1000;
  const uint64_t now = reactor_->now_ms();
  if (now - last_trim_ms_ < kTrimIntervalMs) return;
  last_trim_ms_ = now;
  buffers_.trim();
  released_since_trim_ += buffers_.take_released_bytes();
  if (released_since_trim_ == 0 && session_churn_ == 0) return;
  ::malloc_trim(0);
  released_since_trim_ = 0;
  session_churn_ = 0;
}

void Worker::add_session(SessionLink& link) {
  link.next = &sessions_;
  link.prev = sessions_.prev;
  sessions_.prev->next = &link;
  sessions_.prev = &link;
  session_count_.fetch_add(1, std::memory_order_relaxed);
  ++session_churn_;
}

void Worker::remove_session(SessionLink& link) {
  link.prev->next = link.next;
  link.next->prev = link.prev;
  session_count_.fetch_sub(1, std::memory_order_relaxed);
  ++session_churn_;
}

}  // namespace usher::proxy
