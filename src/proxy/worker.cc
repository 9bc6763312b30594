#include "proxy/worker.h"

#include <malloc.h>
#include <netinet/tcp.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <random>

#include "base/allocation_count.h"
#include "cluster/service.h"
#include "net/task.h"
#include "proxy/h2/backend.h"
#include "proxy/l4/outbox.h"
#include "proxy/l4/tcp.h"
#include "proxy/l4/udp.h"
#include "proxy/l7/http_session.h"
#include "proxy/l7/stream.h"

namespace usher::proxy {

namespace {

constexpr size_t kMaxIdleUpstreamsPerBackend = 1024;

// Accepting again right after running out of descriptors or memory would spin on a listener that
// stays readable; a pause lets connections close meanwhile (nginx disables accepting for 500 ms).
constexpr uint64_t kAcceptPauseMs = 100;
// How often a worker reports a listener's accept failures that go on.
constexpr uint64_t kAcceptReportMs = 10'000;

struct AcceptFailure {
  metrics::AcceptError kind;
  bool pause;  // false: only that connection failed (the client gave up), accept the next
};

AcceptFailure classify(long error) {
  switch (-error) {
    case EMFILE:
    case ENFILE:
      return {metrics::AcceptError::kFdLimit, true};
    case ENOBUFS:
    case ENOMEM:
      return {metrics::AcceptError::kMemory, true};
    // accept(2): errors of the pending connection itself, to be treated like EAGAIN.
    case ECONNABORTED:
    case EPROTO:
    case EPERM:
    case ENETDOWN:
    case ENOPROTOOPT:
    case EHOSTDOWN:
    case ENONET:
    case EHOSTUNREACH:
    case EOPNOTSUPP:
    case ENETUNREACH:
      return {metrics::AcceptError::kOther, false};
    default:
      return {metrics::AcceptError::kOther, true};
  }
}

// Counts the failure, and logs it at most once per kAcceptReportMs with how many came since.
void report_accept_failure(Worker& worker, Endpoint& endpoint, long error, AcceptFailure failure) {
  const auto& listener = worker.current().listeners[static_cast<size_t>(endpoint.listener)];
  worker.metrics()
      .listeners[listener.metric_id]
      .accept_errors[static_cast<size_t>(failure.kind)]
      .add();
  if (!failure.pause) return;
  ++endpoint.unreported_failures;
  const uint64_t now = worker.reactor().now_ms();
  if (endpoint.last_report_ms != 0 && now - endpoint.last_report_ms < kAcceptReportMs) return;
  rlimit limit{};
  ::getrlimit(RLIMIT_NOFILE, &limit);
  spdlog::error(
      "listener {} ({}): accept() failed ({}: {}); {} failed accepts since the last "
      "report; pausing accepts {} ms each time (descriptor limit {})",
      listener.config.name, endpoint.listen.to_string(), -error,
      std::strerror(static_cast<int>(-error)), endpoint.unreported_failures, kAcceptPauseMs,
      limit.rlim_cur);
  endpoint.last_report_ms = now;
  endpoint.unreported_failures = 0;
}

// Ends when the worker stops the endpoint, having served every connection it took.
net::Task<void> accept_loop(Worker& worker, Endpoint& endpoint) {
  net::Socket& listener = *endpoint.socket;
  worker.count_accept_loop(1);
  while (true) {
    long fd = co_await listener.accept(0);
    if (fd == -ECANCELED || (fd < 0 && !listener.is_open())) break;
    if (fd < 0) {
      const AcceptFailure failure = classify(fd);
      report_accept_failure(worker, endpoint, fd, failure);
      if (failure.pause) {
        co_await net::sleep_until(worker.reactor(), worker.reactor().now_ms() + kAcceptPauseMs);
      }
      continue;
    }
    int one = 1;
    ::setsockopt(static_cast<int>(fd), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    net::spawn(endpoint.handler(worker, static_cast<int>(fd), endpoint));
  }
  if (listener.is_open()) listener.close();
  worker.count_accept_loop(-1);
}

// The protocol handler of a listener, chosen at load so that accepting knows no protocol.
ConnectionHandler handler_for(const config::Listener& listener) {
  switch (listener.protocol) {
    case config::Protocol::kTcp:
      return l4::serve_tcp;
    case config::Protocol::kHttp:
    case config::Protocol::kUdp:  // never accepts: serve_udp reads its socket
      break;
  }
  return l7::serve_http;
}

}  // namespace

int bind_listener(const Address& address, bool datagram, std::string& error) {
  const int type = datagram ? SOCK_DGRAM : SOCK_STREAM;
  int fd = ::socket(address.family(), type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    error = std::string("socket: ") + std::strerror(errno);
    return -1;
  }
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  if (::bind(fd, address.sockaddr_ptr(), address.length()) < 0 ||
      (!datagram && ::listen(fd, 4096) < 0)) {
    error = "cannot listen on " + address.to_string() + ": " + std::strerror(errno);
    ::close(fd);
    return -1;
  }
  return fd;
}

size_t buffer_size_for(const config::Limits& limits) {
  // Room for the largest accepted head plus the fields usher adds when forwarding it.
  return std::max<size_t>(16 * 1024, limits.max_header_bytes + 4 * 1024);
}

Worker::Worker(const config::Limits& limits, metrics::Shard& metrics, log::Channel& access_log,
               trace::Channel& trace, std::unique_ptr<net::Reactor> reactor)
    : metrics_(metrics),
      access_log_(access_log),
      trace_(trace),
      reactor_(std::move(reactor)),
      buffers_(buffer_size_for(limits)),
      upstreams_(kMaxIdleUpstreamsPerBackend),
      h2_backends_(std::make_unique<h2::BackendSessions>(*this)),
      pool_queue_(*reactor_),
      random_state_(std::random_device{}() | 1) {
  sessions_.prev = sessions_.next = &sessions_;
}

Worker::~Worker() {
  join();
  delete offered_.exchange(nullptr);
}

void Worker::offer(std::unique_ptr<WorkerGeneration> next) {
  // A generation offered earlier and not yet taken is simply replaced: it never served.
  delete offered_.exchange(next.release(), std::memory_order_acq_rel);
  reactor_->wake();
}

void Worker::adopt(std::unique_ptr<WorkerGeneration> next) {
  const config::Config& config = next->config();
  header_scratch_.resize(config.limits.max_headers);
  // Idle connections to backends this generation no longer has are closed now; busy ones are
  // not given back when their request ends (the pool says the backend left).
  std::vector<bool> kept;
  for (const auto& pool : next->shared->pools) {
    pool->for_each_member([&](uint32_t slot) {
      const uint32_t id = pool->backend_id(slot);
      upstreams_.track(id);
      if (id >= kept.size()) kept.resize(id + 1);
      kept[id] = true;
    });
  }
  upstreams_.close_unless([&kept](uint32_t id) { return id < kept.size() && kept[id]; });
  // Current before any endpoint opens: an accept can complete at once (epoll) and start a
  // connection on this generation before open_endpoints() returns.
  WorkerGeneration* previous = current_;
  current_ = next.get();
  const uint64_t number = next->shared->number;
  generations_.push_back(std::move(next));
  open_endpoints(*current_);
  if (previous && previous->users == 0) release(previous);
  served_.store(number, std::memory_order_release);
}

// Listeners whose address the worker already serves keep their socket (no rebind, nothing
// refused); new ones start accepting; removed ones stop and their idle connections close.
void Worker::open_endpoints(WorkerGeneration& next) {
  for (auto& e : endpoints_) e->listener = -1;
  const auto& listeners = next.config().listeners;
  for (size_t i = 0; i < listeners.size(); ++i) {
    const bool datagram = listeners[i].protocol == config::Protocol::kUdp;
    bool served = false;
    for (auto& e : endpoints_) {
      if (e->socket->is_open() && !e->stopping && e->listen == listeners[i].listen &&
          e->datagram == datagram) {
        e->listener = static_cast<int>(i);
        e->handler = handler_for(listeners[i]);
        served = true;
      }
    }
    const int fd = std::exchange(next.listen_fds[i], -1);
    if (served || fd < 0 || draining_seen_) {
      if (fd >= 0) ::close(fd);
      continue;
    }
    add_endpoint(listeners[i], i, fd);
  }
  for (auto& [i, fd] : std::exchange(next.more_fds, {})) {
    if (draining_seen_) {
      ::close(fd);
    } else {
      add_endpoint(listeners[i], i, fd);
    }
  }
  for (auto& e : endpoints_) {
    if (e->listener < 0 && e->socket->is_open() && !e->stopping) {
      close_endpoint(*e, false);
      close_idle_sessions(e.get());
    }
  }
}

void Worker::add_endpoint(const config::Listener& listener, size_t index, int fd) {
  auto& endpoint = *endpoints_.emplace_back(std::make_unique<Endpoint>());
  endpoint.listen = listener.listen;
  endpoint.socket = std::make_unique<net::Socket>(*reactor_, fd);
  endpoint.listener = static_cast<int>(index);
  endpoint.handler = handler_for(listener);
  endpoint.datagram = listener.protocol == config::Protocol::kUdp;
  // Either may take a connection or datagram at once: everything is set.
  net::spawn(endpoint.datagram ? l4::serve_udp(*this, endpoint) : accept_loop(*this, endpoint));
}

// Draining, a stream listener serves the connections it has taken before its loop closes it
// (a successor may hold the socket and take what is still queued). A listener a reload removed
// closes at once: its port refuses from then on, and what it had taken has no listener to serve.
void Worker::close_endpoint(Endpoint& endpoint, bool draining) {
  endpoint.stopping = true;
  if (draining && !endpoint.datagram) {
    reactor_->stop_accepting(*endpoint.socket);
    return;
  }
  reactor_->cancel(*endpoint.socket);
  endpoint.socket->close();
}

void Worker::close_idle_sessions(const Endpoint* of) {
  for (SessionLink* s = sessions_.next; s != &sessions_; s = s->next) {
    if (s->idle && (!of || s->endpoint == of)) reactor_->cancel(*s->client);
  }
}

void Worker::release(WorkerGeneration* generation) {
  if (generation == current_ || generation->users != 0) return;
  std::erase_if(generations_, [generation](const auto& g) { return g.get() == generation; });
}

void Worker::start() {
  thread_ = std::thread([this] { run(); });
}

void Worker::run() {
  if (WorkerGeneration* first = offered_.exchange(nullptr, std::memory_order_acq_rel)) {
    adopt(std::unique_ptr<WorkerGeneration>(first));
  }
  count_allocations_into(&metrics_.heap_allocations);
  reactor_->count_buffer_shortages_into(&metrics_.receive_buffer_shortages);
  reactor_->run({[this] { on_wake(); }, [this] { on_idle(); },
                 [this] { return !access_log_.empty(); },
                 [this] {
                   access_log_.flush_if_due();
                   return outbox_ && outbox_->flush();
                 }});
  upstreams_.clear();
  access_log_.flush();
  count_allocations_into(nullptr);
}

void Worker::begin_drain() {
  drain_requested_.store(true, std::memory_order_relaxed);
  reactor_->wake();
}

void Worker::end_tunnels() {
  end_tunnels_requested_.store(true, std::memory_order_relaxed);
  reactor_->wake();
}

bool Worker::tunnels_ended() const {
  return tunnels_asked_.load(std::memory_order_acquire) &&
         ending_tunnels_.load(std::memory_order_acquire) == 0;
}

void Worker::stop() {
  reactor_->stop();
}

void Worker::join() {
  if (thread_.joinable()) thread_.join();
}

void Worker::on_wake() {
  if (WorkerGeneration* next = offered_.exchange(nullptr, std::memory_order_acq_rel)) {
    adopt(std::unique_ptr<WorkerGeneration>(next));
  }
  if (cluster_port_) cluster_port_->deliver();
  if (end_tunnels_requested_.load(std::memory_order_relaxed) && !end_tunnels_seen_) {
    end_tunnels_seen_ = true;
    for (SessionLink* s = sessions_.next; s != &sessions_; s = s->next) {
      if (s->tunnel) end_tunnel(*s);
    }
    tunnels_asked_.store(true, std::memory_order_release);
  }
  if (!drain_requested_.load(std::memory_order_relaxed) || draining_seen_) return;
  draining_seen_ = true;
  for (auto& endpoint : endpoints_) {
    if (endpoint->socket->is_open() && !endpoint->stopping) close_endpoint(*endpoint, true);
  }
  close_idle_sessions(nullptr);
  upstreams_.clear();
  h2_backends_->close_idle();
}

void Worker::on_idle() {
  access_log_.flush();
  // After a burst the allocator keeps the pages the burst needed (buffers, request frames,
  // closed connections); they go back to the system once the load has settled: a second in which
  // no connection opened or closed. While connections keep coming and going (a load in waves, an
  // attack that reconnects as it is closed), the pages stay for the next wave: giving them back
  // every second made each wave fault them in again, up to 500 pages inside one loop turn at
  // about 15 µs a fault on the benchmark machine's virtual CPU (docs/benchmarks.md, "Slow
  // clients"). A load that never settles still gives them back kTrimBackstopMs after it began
  // owing them, so that idle connections cost what they hold, not what the busiest moment needed.
  constexpr uint64_t kBufferTrimIntervalMs = 1000;
  constexpr uint64_t kSettledMs = 1000;
  constexpr uint64_t kTrimBackstopMs = 60'000;
  const uint64_t now = reactor_->now_ms();
  if (now - last_buffer_trim_ms_ >= kBufferTrimIntervalMs) {
    last_buffer_trim_ms_ = now;
    buffers_.trim();
    if (buffers_.take_released_bytes() > 0) owe_memory(now);
  }
  if (!memory_owed_) return;
  if (now - last_churn_ms_ < kSettledMs && now - owed_since_ms_ < kTrimBackstopMs) return;
  ::malloc_trim(0);
  memory_owed_ = false;
}

void Worker::owe_memory(uint64_t now) {
  if (std::exchange(memory_owed_, true)) return;
  owed_since_ms_ = now;
}

l4::Outbox& Worker::outbox() {
  if (!outbox_) outbox_ = std::make_unique<l4::Outbox>(*reactor_);
  return *outbox_;
}

void Worker::add_session(SessionLink& link) {
  link.next = &sessions_;
  link.prev = sessions_.prev;
  sessions_.prev->next = &link;
  sessions_.prev = &link;
  session_count_.fetch_add(1, std::memory_order_relaxed);
  last_churn_ms_ = reactor_->now_ms();
  owe_memory(last_churn_ms_);
}

void Worker::remove_session(SessionLink& link) {
  link.prev->next = link.next;
  link.next->prev = link.prev;
  session_count_.fetch_sub(1, std::memory_order_relaxed);
  if (link.tunnel_ending) ending_tunnels_.fetch_sub(1, std::memory_order_release);
  last_churn_ms_ = reactor_->now_ms();
  owe_memory(last_churn_ms_);
}

void Worker::add_tunnel(SessionLink& link, l7::TunnelControl& tunnel) {
  link.tunnel = &tunnel;
  if (end_tunnels_seen_) end_tunnel(link);
}

void Worker::end_tunnel(SessionLink& link) {
  if (link.tunnel_ending) return;
  link.tunnel_ending = true;
  ending_tunnels_.fetch_add(1, std::memory_order_relaxed);
  link.tunnel->end();
}

}  // namespace usher::proxy
