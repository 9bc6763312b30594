// The io_uring backend: every operation is an SQE whose completion carries the result (bytes
// received, sent, the accepted fd), so one io_uring_enter per loop turn both submits the turn's
// work and collects what finished, where epoll needs a wait plus a syscall per operation.
// Sockets stay non-blocking; the kernel arms its own poll when data is not there yet. Where the
// kernel has multishot receives, reads and accepts are served by standing requests instead
// (uring_receive.cc).
//
// Lifetimes: the kernel refers to an operation by its slot in `slots_`, never by address, so a
// coroutine torn down with its socket (detach), or resumed early by cancel(), only empties the
// slot and the late completion is dropped. Deadlines use the same timer wheel as epoll; an expired
// operation is cancelled in the kernel and completes (with -ETIMEDOUT) only when the kernel has let
// go of its buffer.
#include "net/uring_reactor.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <utility>

namespace usher::net {

namespace {

// io_uring's own splice cannot wait on a non-blocking socket (it answers -EAGAIN), so a splice
// waits for readiness here and then moves the bytes with splice(2).
bool is_splice(OpKind kind) {
  return kind == OpKind::kSpliceIn || kind == OpKind::kSpliceOut;
}

void prepare(io_uring_sqe& sqe, IoOp& op) {
  const int fd = op.socket->fd();
  switch (op.kind) {
    case OpKind::kRead:
      io_uring_prep_recv(&sqe, fd, op.buffer, op.length, 0);
      break;
    case OpKind::kWrite:
      io_uring_prep_send(&sqe, fd, op.buffer, op.length, MSG_NOSIGNAL);
      break;
    case OpKind::kWritev:
      io_uring_prep_writev(&sqe, fd, op.iov, static_cast<unsigned>(op.iov_count), 0);
      break;
    case OpKind::kAccept:
      io_uring_prep_accept(&sqe, fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      break;
    case OpKind::kConnect:
      io_uring_prep_poll_add(&sqe, fd, POLLOUT);
      break;
    case OpKind::kPollIn:
      io_uring_prep_poll_add(&sqe, fd, POLLIN | POLLRDHUP);
      break;
    case OpKind::kWaitIn:  // a plain poll: the standing receive would take the datagrams
      io_uring_prep_poll_add(&sqe, fd, POLLIN);
      break;
    case OpKind::kSpliceIn:
      io_uring_prep_poll_add(&sqe, fd, POLLIN);
      break;
    case OpKind::kSpliceOut:
      io_uring_prep_poll_add(&sqe, fd, POLLOUT);
      break;
    case OpKind::kSleep:
    case OpKind::kEndReceive:
      break;
  }
}

bool retries_on_eagain(OpKind kind) {
  return kind == OpKind::kRead || kind == OpKind::kWrite || kind == OpKind::kWritev ||
         is_splice(kind);
}

long connect_result(Socket& socket) {
  int error = 0;
  socklen_t len = sizeof error;
  if (::getsockopt(socket.fd(), SOL_SOCKET, SO_ERROR, &error, &len) < 0) return -errno;
  return error ? -error : 0;
}

}  // namespace

thread_local UringReactor* UringReactor::current_ = nullptr;

UringReactor::UringReactor(const io_uring& ring, int wake_fd, bool disabled,
                           std::unique_ptr<ProvidedBuffers> buffers)
    : ring_(ring),
      wake_fd_(wake_fd),
      disabled_(disabled),
      buffers_(std::move(buffers)),
      now_(monotonic_ms()),
      timers_(now_) {
  slots_.reserve(4096);
  free_slots_.reserve(4096);
}

UringReactor::~UringReactor() {
  io_uring_queue_exit(&ring_);
  ::close(wake_fd_);
}

void UringReactor::detach(Socket& socket) {
  orphan_all(socket);
  if (socket.standing & kAcceptEntry) {
    drop_accept(socket);
  } else {
    drop_standing(socket);
  }
}

bool UringReactor::submit(IoOp& op) {
  if (op.kind == OpKind::kSleep) {
    arm_deadline(op);
    return false;
  }
  if (op.kind == OpKind::kConnect && op.result != -EINPROGRESS) return true;
  if (is_splice(op.kind)) {
    op.result = splice_once(op);
    if (op.result != -EAGAIN) return true;
  }
  op.aborted = 0;
  if (op.kind == OpKind::kEndReceive) return end_receive(op);
  if (buffers_ && (op.kind == OpKind::kRead || op.kind == OpKind::kPollIn)) return receive(op);
  if (buffers_ && op.kind == OpKind::kAccept) return accept(op);
  queue(op);
  arm_deadline(op);
  return false;
}

// Like epoll: the parked operations complete with -ECANCELED after the current batch.
void UringReactor::cancel(Socket& socket) {
  for (IoOp* op : orphan_all(socket)) {
    if (op == nullptr) continue;
    op->result = -ECANCELED;
    enqueue(*op);
  }
}

void UringReactor::run(const Hooks& hooks) {
  current_ = this;
  if (std::exchange(disabled_, false)) enable_rings();
  arm_wake();
  while (!stopping_.load(std::memory_order_relaxed)) {
    __kernel_timespec wait{};
    if (!timers_.empty()) {
      wait.tv_nsec = static_cast<long long>(TimerWheel::kTickMs) * 1'000'000;
    } else if (hooks.idle_work_waiting && hooks.idle_work_waiting()) {
      wait.tv_nsec = static_cast<long long>(kIdleWorkWaitMs) * 1'000'000;
    } else {
      wait.tv_sec = 1;
    }
    if (!ready_.empty()) wait = {};  // completed by a hook (a cancel from on_wake)
    io_uring_cqe* first = nullptr;
    io_uring_submit_and_wait_timeout(&ring_, &first, 1, &wait, nullptr);
    now_ = monotonic_ms();
    const unsigned count = reap();
    timers_.advance(now_);
    resume_ready();
    while (hooks.on_turn_end && hooks.on_turn_end()) resume_ready();
    if (std::exchange(woken_, false) && hooks.on_wake) hooks.on_wake();
    if (count == 0 && hooks.on_idle) hooks.on_idle();
  }
  finish_cancellations();
}

void UringReactor::stop() {
  stopping_.store(true, std::memory_order_relaxed);
  wake();
}

void UringReactor::wake() {
  uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(wake_fd_, &one, sizeof one);
}

// Operations cancelled just before stop() (a listener's accept, say) complete only when the
// kernel answers; wait briefly for that so their coroutines can finish and free their frames.
void UringReactor::finish_cancellations() {
  for (int turn = 0; turn < 100 && aborting_ > 0; ++turn) {
    __kernel_timespec wait{.tv_sec = 0, .tv_nsec = 10'000'000};
    io_uring_cqe* first = nullptr;
    io_uring_submit_and_wait_timeout(&ring_, &first, 1, &wait, nullptr);
    reap();
    resume_ready();
  }
  resume_ready();
}

// Takes the socket's operations back from the kernel: their late completions are dropped.
// The cancels are submitted at once, before the fd closes or a buffer is reused (the kernel
// drops a socket operation waiting for readiness inside the submit call).
std::array<IoOp*, 2> UringReactor::orphan_all(Socket& socket) {
  std::array<IoOp*, 2> ops{std::exchange(socket.reader, nullptr),
                           std::exchange(socket.writer, nullptr)};
  bool sent = false;
  for (IoOp* op : ops) {
    if (op == nullptr) continue;
    timers_.cancel(op->timer);
    if (op->slot == kParked) continue;
    slots_[op->slot] = nullptr;
    if (op->aborted) --aborting_;
    cancel_request(op->slot + 1);
    sent = true;
  }
  if (sent) io_uring_submit(&ring_);
  return ops;
}

void UringReactor::expire_parked(IoOp& op) {
  op.socket->reader = nullptr;
  op.result = -ETIMEDOUT;
  enqueue(op);
}

void UringReactor::queue(IoOp& op) {
  io_uring_sqe* sqe = next_sqe();
  prepare(*sqe, op);
  op.slot = take_slot(op);
  io_uring_sqe_set_data64(sqe, op.slot + 1);
  (is_read_side(op.kind) ? op.socket->reader : op.socket->writer) = &op;
}

// liburing 2.3 declares io_uring_enable_rings but does not export it.
void UringReactor::enable_rings() {
  ::syscall(__NR_io_uring_register, ring_.ring_fd, IORING_REGISTER_ENABLE_RINGS, nullptr, 0);
}

// Handles every completion waiting in the queue; returns how many there were.
unsigned UringReactor::reap() {
  unsigned head, count = 0;
  io_uring_cqe* cqe;
  io_uring_for_each_cqe(&ring_, head, cqe) {
    ++count;
    complete(*cqe);
  }
  io_uring_cq_advance(&ring_, count);
  return count;
}

void UringReactor::complete(const io_uring_cqe& cqe) {
  const uint64_t tag = cqe.user_data;
  if (tag == kWakeTag) {
    uint64_t count;
    while (::read(wake_fd_, &count, sizeof count) > 0) {
    }
    woken_ = true;
    if (!(cqe.flags & IORING_CQE_F_MORE)) arm_wake();
    return;
  }
  if (tag == kIgnoreTag) return;
  if (tag & kStandingTag) {
    complete_standing(cqe);
    return;
  }
  if (tag & kAcceptTag) {
    complete_accept(cqe);
    return;
  }
  if (tag & kDatagramTag) {
    complete_datagram(cqe);
    return;
  }
  const auto index = static_cast<uint32_t>(tag - 1);
  IoOp* op = slots_[index];
  free_slots_.push_back(index);
  if (op == nullptr) return;  // its socket was detached
  slots_[index] = nullptr;
  Socket& socket = *op->socket;
  (is_read_side(op->kind) ? socket.reader : socket.writer) = nullptr;
  long result = cqe.res;
  if (result >= 0 && is_splice(op->kind)) result = splice_once(*op);
  // Woken for nothing (another reader took the bytes), or a request the kernel retried from a
  // worker thread after its poll, where the socket's O_NONBLOCK answers -EAGAIN instead of
  // waiting (a write under socket-memory pressure): wait again, within the same deadline.
  if (result == -EAGAIN && !op->aborted && retries_on_eagain(op->kind)) {
    queue(*op);
    return;
  }
  timers_.cancel(op->timer);
  if (op->aborted) --aborting_;
  // A cancelled request ends -ECANCELED, or -EAGAIN when the kernel was retrying it: either way
  // it ended for the reason it was cancelled.
  if (op->aborted && (result == -ECANCELED || result == -EAGAIN)) result = -op->aborted;
  if (result >= 0 && op->kind == OpKind::kConnect) result = connect_result(socket);
  if (op->kind == OpKind::kRead && result >= 0 && static_cast<size_t>(result) < op->length &&
      socket.standing != 0) {
    standing_[socket.standing - 1].behind = false;  // caught up: bursts are small again
  }
  if (result >= 0 && op->kind == OpKind::kPollIn) {
    if (result & (POLLRDHUP | POLLHUP)) socket.peer_closed = true;
    result = 0;
  }
  if (result >= 0 && op->kind == OpKind::kWaitIn) result = 0;
  op->result = result;
  enqueue(*op);
}

uint32_t UringReactor::take_slot(IoOp& op) {
  if (free_slots_.empty()) {
    slots_.push_back(&op);
    return static_cast<uint32_t>(slots_.size() - 1);
  }
  uint32_t index = free_slots_.back();
  free_slots_.pop_back();
  slots_[index] = &op;
  return index;
}

// The completion arrives once the kernel lets go; it then reports `reason`.
void UringReactor::abort(IoOp& op, int reason) {
  if (op.aborted) return;
  op.aborted = reason;
  ++aborting_;
  cancel_request(op.slot + 1);
}

void UringReactor::arm_wake() {
  io_uring_sqe* sqe = next_sqe();
  io_uring_prep_poll_multishot(sqe, wake_fd_, POLLIN);
  io_uring_sqe_set_data64(sqe, kWakeTag);
}

void UringReactor::arm_deadline(IoOp& op) {
  if (op.deadline_ms == 0) return;
  op.timer.fire = [](TimerEntry* entry) {
    IoOp* op = reinterpret_cast<IoOp*>(reinterpret_cast<char*>(entry) - offsetof(IoOp, timer));
    if (op->kind == OpKind::kSleep) {
      op->result = -ETIMEDOUT;
      current_->enqueue(*op);
    } else if (op->slot == kParked) {
      current_->expire_parked(*op);
    } else {
      current_->abort(*op, ETIMEDOUT);
    }
  };
  timers_.arm(op.timer, op.deadline_ms);
}

void UringReactor::resume_ready() {
  ready_.resume_all();
}

}  // namespace usher::net
