// The epoll backend: edge-triggered, one registration per socket for its lifetime. An operation
// is first tried at once; only on EAGAIN does it park on the socket until readiness returns.
// Completions found while dispatching a batch of events are queued and resumed after the batch,
// so no coroutine can free a socket whose event is still in the batch. Writes are the exception
// to "at once" (epoll_writes.cc).
#include "net/epoll_reactor.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <system_error>

namespace usher::net {

uint64_t monotonic_ms() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000 + static_cast<uint64_t>(ts.tv_nsec) / 1'000'000;
}

namespace {

constexpr uint32_t kReadEvents = EPOLLIN | EPOLLRDHUP | EPOLLET;

bool is_write(OpKind kind) {
  return kind == OpKind::kWrite || kind == OpKind::kWritev;
}

// A short read emptied the socket, and the next bytes will bring a new edge: until then the next
// read waits instead of spending a syscall on EAGAIN (nginx does the same). Not once the peer's
// close was seen: that edge has already come.
void note_short_read(Socket& socket, ssize_t n, size_t asked) {
  if (n > 0 && static_cast<size_t>(n) < asked && !socket.peer_closed) socket.read_ready = false;
}

}  // namespace

thread_local EpollReactor* EpollReactor::current_ = nullptr;

// Runs the operation's syscall once; -EAGAIN means "not yet".
long EpollReactor::attempt(IoOp& op) {
  int fd = op.socket->fd();
  if (op.kind == OpKind::kAccept && op.socket->accepts_ended) return -ECANCELED;
  // Edge-triggered: after an EAGAIN nothing changes until the next event, so skip the syscall.
  if (is_read_side(op.kind) ? !op.socket->read_ready : !op.socket->write_ready) return -EAGAIN;
  long n = 0;
  switch (op.kind) {
    case OpKind::kRead:
      n = ::recv(fd, op.buffer, op.length, 0);
      note_short_read(*op.socket, n, op.length);
      break;
    case OpKind::kWrite:
      n = ::send(fd, op.buffer, op.length, MSG_NOSIGNAL);
      break;
    case OpKind::kWritev: {
      msghdr msg{};
      msg.msg_iov = const_cast<iovec*>(op.iov);
      msg.msg_iovlen = static_cast<size_t>(op.iov_count);
      n = ::sendmsg(fd, &msg, MSG_NOSIGNAL);
      break;
    }
    case OpKind::kAccept:
      n = ::accept4(fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      break;
    case OpKind::kConnect: {
      int error = 0;
      socklen_t len = sizeof error;
      if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &len) < 0) return -errno;
      return error ? -error : 0;
    }
    case OpKind::kPollIn:
    case OpKind::kWaitIn:
      return op.socket->read_ready ? 0 : -EAGAIN;
    case OpKind::kSleep:
      return -EAGAIN;
    case OpKind::kEndReceive:  // completed in submit(): epoll receives nothing on its own
      return 0;
    case OpKind::kSpliceIn:
    case OpKind::kSpliceOut:
      return splice_once(op);
  }
  if (n >= 0) return n;
  return errno == EWOULDBLOCK ? -EAGAIN : -errno;
}

EpollReactor::EpollReactor(EpollWrites writes) : now_(monotonic_ms()), timers_(now_) {
  if (writes == EpollWrites::kBatched) aio_ = AioBatch::create();
  epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
  wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (epoll_fd_ < 0 || wake_fd_ < 0) throw std::system_error(errno, std::generic_category());
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.ptr = nullptr;
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &ev);
  deferred_writes_.reserve(256);
  flushing_.reserve(256);
}

EpollReactor::~EpollReactor() {
  ::close(wake_fd_);
  ::close(epoll_fd_);
}

// Writability is watched only once a write has had to wait: on a healthy connection every ACK
// would otherwise wake the loop for nothing.
void EpollReactor::attach(Socket& socket) {
  control(socket, EPOLL_CTL_ADD, kReadEvents);
}

void EpollReactor::detach(Socket& socket) {
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, socket.fd(), nullptr);
  forget_deferred_write(socket);
  std::replace(next_turn_.begin(), next_turn_.end(), &socket, static_cast<Socket*>(nullptr));
  // An op still parked here belongs to a coroutine that is being torn down with the socket.
  for (IoOp* op : {socket.reader, socket.writer}) {
    if (op) timers_.cancel(op->timer);
  }
  socket.reader = socket.writer = nullptr;
}

bool EpollReactor::submit(IoOp& op) {
  if (op.kind == OpKind::kSleep) {
    arm_deadline(op);
    return false;
  }
  if (op.kind == OpKind::kWaitIn) return wait_in(op);
  if (op.kind == OpKind::kEndReceive) {
    op.result = 0;
    return true;
  }
  if (op.kind == OpKind::kConnect) {
    if (op.result != -EINPROGRESS) return true;
    watch_writable(*op.socket);
    op.socket->write_ready = false;
    op.socket->writer = &op;
    arm_deadline(op);
    return false;
  }
  if (is_write(op.kind) && op.socket->write_ready) {
    op.socket->writer = &op;
    op.socket->write_deferred = true;
    deferred_writes_.push_back(&op);
    return false;
  }
  return start(op);
}

void EpollReactor::run(const Hooks& hooks) {
  current_ = this;
  epoll_event events[256];
  while (!stopping_.load(std::memory_order_relaxed)) {
    int timeout = timers_.empty() ? 1000 : static_cast<int>(TimerWheel::kTickMs);
    if (timeout > kIdleWorkWaitMs && hooks.idle_work_waiting && hooks.idle_work_waiting()) {
      timeout = kIdleWorkWaitMs;
    }
    if (!next_turn_.empty()) timeout = 0;  // readiness waits to complete in this turn
    if (!ready_.empty()) timeout = 0;      // completed by a hook (a cancel from on_wake)
    int n = ::epoll_wait(epoll_fd_, events, 256, timeout);
    now_ = monotonic_ms();
    bool woken = false;
    for (int i = 0; i < n; ++i) {
      if (events[i].data.ptr == nullptr) {
        uint64_t count;
        while (::read(wake_fd_, &count, sizeof count) > 0) {
        }
        woken = true;
        continue;
      }
      dispatch(*static_cast<Socket*>(events[i].data.ptr), events[i].events);
    }
    serve_next_turn();
    timers_.advance(now_);
    finish_turn();
    while (hooks.on_turn_end && hooks.on_turn_end()) finish_turn();
    if (woken && hooks.on_wake) hooks.on_wake();
    if (n == 0 && hooks.on_idle) hooks.on_idle();
  }
  // Completions already queued (a cancelled accept, say) still reach their coroutines, so
  // those can finish and free their frames rather than be abandoned mid-await.
  finish_turn();
}

void EpollReactor::cancel(Socket& socket) {
  forget_deferred_write(socket);
  for (IoOp** slot : {&socket.reader, &socket.writer}) {
    if (IoOp* op = *slot) {
      *slot = nullptr;
      timers_.cancel(op->timer);
      op->result = -ECANCELED;
      enqueue(*op);
    }
  }
}

// Nothing taken from the kernel waits here: the accept loop simply ends.
void EpollReactor::stop_accepting(Socket& socket) {
  socket.accepts_ended = true;
  cancel(socket);
}

void EpollReactor::stop() {
  stopping_.store(true, std::memory_order_relaxed);
  wake();
}

void EpollReactor::wake() {
  uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(wake_fd_, &one, sizeof one);
}

long EpollReactor::try_read(Socket& socket, char* buffer, size_t length) {
  ssize_t n = ::recv(socket.fd(), buffer, length, 0);
  note_short_read(socket, n, length);
  if (n >= 0) return n;
  if (errno == EAGAIN || errno == EWOULDBLOCK) {
    socket.read_ready = false;
    return -EAGAIN;
  }
  return -errno;
}

// Tries the operation now; parks it on its socket until readiness returns if it cannot run.
bool EpollReactor::start(IoOp& op) {
  return settle(op, attempt(op));
}

// Takes an attempt's result: true when the operation completed with it, false when it parked.
bool EpollReactor::settle(IoOp& op, long result) {
  if (result == -EAGAIN) {
    park(op);
    return false;
  }
  op.result = result;
  return true;
}

// A readiness wait on a socket that is readable already completes in the next turn, not inline
// (Socket::wait_readable says why); its socket is listed for that turn.
bool EpollReactor::wait_in(IoOp& op) {
  op.socket->reader = &op;
  arm_deadline(op);
  if (op.socket->read_ready) next_turn_.push_back(op.socket);
  return false;
}

// After the turn's events: the listed sockets still waiting (no event, timeout or cancel came
// first) complete if still readable, and park for the next edge otherwise.
void EpollReactor::serve_next_turn() {
  serving_turn_.swap(next_turn_);
  for (Socket* socket : serving_turn_) {
    if (socket && socket->reader && socket->reader->kind == OpKind::kWaitIn) {
      retry(socket->reader);
    }
  }
  serving_turn_.clear();
}

// Waits for readiness to return.
void EpollReactor::park(IoOp& op) {
  if (is_read_side(op.kind)) {
    op.socket->read_ready = false;
    op.socket->reader = &op;
  } else {
    watch_writable(*op.socket);
    op.socket->write_ready = false;
    op.socket->writer = &op;
  }
  arm_deadline(op);
}

void EpollReactor::control(Socket& socket, int op, uint32_t events) {
  epoll_event ev{};
  ev.events = events;
  ev.data.ptr = &socket;
  if (::epoll_ctl(epoll_fd_, op, socket.fd(), &ev) < 0) {
    throw std::system_error(errno, std::generic_category(), "epoll_ctl");
  }
}

void EpollReactor::watch_writable(Socket& socket) {
  if (socket.watching_writable) return;
  socket.watching_writable = true;
  control(socket, EPOLL_CTL_MOD, kReadEvents | EPOLLOUT);
}

void EpollReactor::arm_deadline(IoOp& op) {
  if (op.deadline_ms == 0) return;
  op.timer.fire = [](TimerEntry* entry) {
    IoOp* op = reinterpret_cast<IoOp*>(reinterpret_cast<char*>(entry) - offsetof(IoOp, timer));
    op->result = -ETIMEDOUT;
    if (op->socket) {
      if (op->socket->reader == op) op->socket->reader = nullptr;
      if (op->socket->writer == op) op->socket->writer = nullptr;
    }
    current_->enqueue(*op);
  };
  timers_.arm(op.timer, op.deadline_ms);
}

void EpollReactor::dispatch(Socket& socket, uint32_t events) {
  if (events & (EPOLLRDHUP | EPOLLHUP)) socket.peer_closed = true;
  if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
    socket.read_ready = true;
    retry(socket.reader);
  }
  if (events & (EPOLLOUT | EPOLLHUP | EPOLLERR)) {
    socket.write_ready = true;
    if (!socket.write_deferred) retry(socket.writer);
  }
}

void EpollReactor::retry(IoOp*& slot) {
  IoOp* op = slot;
  if (op == nullptr) return;
  long result = attempt(*op);
  if (result == -EAGAIN) return;
  op->result = result;
  slot = nullptr;
  timers_.cancel(op->timer);
  enqueue(*op);
}

void EpollReactor::resume_ready() {
  ready_.resume_all();
}

std::unique_ptr<Reactor> make_epoll_reactor(EpollWrites writes) {
  return std::make_unique<EpollReactor>(writes);
}

std::unique_ptr<Reactor> make_reactor(IoBackend backend, std::string& error) {
  if (backend == IoBackend::kEpoll) return make_epoll_reactor();
  std::unique_ptr<Reactor> uring = make_uring_reactor(error);
  if (uring || backend == IoBackend::kIoUring) return uring;
  return make_epoll_reactor();
}

}  // namespace usher::net
