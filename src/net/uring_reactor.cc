// The io_uring backend: every operation is an SQE whose completion carries the result (bytes
// received, sent, the accepted fd), so one io_uring_enter per loop turn both submits the turn's
// work and collects what finished, where epoll needs a wait plus a syscall per operation.
// Sockets stay non-blocking; the kernel arms its own poll when data is not there yet.
//
// Receiving: a socket's first read starts a standing multishot receive that lasts while the
// socket does. Each completion brings bytes in a buffer the kernel took from a shared ring
// (uring_buffers.h), so no socket holds a buffer while it waits, and no read costs a request of
// its own. The socket's reads take from what arrived; past a few unread buffers the receive is
// cancelled, so TCP flow control holds back a sender nobody reads. A socket stopped that way
// then reads with one-shot requests into its reader's buffer until one comes back short (the
// reader caught up): a multishot rearmed over hundreds of KiB queued in the kernel pours them
// all into the ring in one turn (one socket took 213 buffers). The cap is per socket, so a
// crowd of stalled sockets (slow clients' responses) would still take the whole ring: once
// fewer than kReserve buffers are free, a stopped socket's bytes (up to kMaxSpilled buffers)
// move to its own memory and its buffers go back, which keeps the reserve for sockets that are
// being read (200 stalled sockets held all but 1-7 of 1024 buffers, docs/benchmarks.md). When the
// ring runs dry all the same, a read falls back to a one-shot request into its own buffer, and the
// worker counts it (usher_worker_receive_buffer_shortages_total). A listener likewise keeps one
// multishot accept, and its accepts take the connections that request brought. A readiness wait
// (Socket::wait_readable) is a plain poll request instead: its socket's owner receives with its
// own syscalls, as a udp listener does with recvmmsg to learn each datagram's sender.
//
// Lifetimes: the kernel refers to an operation by its slot in `slots_`, never by address, so a
// coroutine torn down with its socket (detach), or resumed early by cancel(), only empties the
// slot and the late completion is dropped. Deadlines use the same timer wheel as epoll; an expired
// operation is cancelled in the kernel and completes (with -ETIMEDOUT) only when the kernel has let
// go of its buffer.
#include <liburing.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <deque>
#include <memory>
#include <utility>
#include <vector>

#include "net/reactor.h"
#include "net/socket.h"
#include "net/uring_buffers.h"

namespace usher::net {

namespace {

constexpr unsigned kQueueDepth = 1024;
// user_data values that are not slots (slots are 1 .. 2^32).
constexpr uint64_t kWakeTag = uint64_t{1} << 40;
constexpr uint64_t kIgnoreTag = uint64_t{1} << 41;
constexpr uint64_t kStandingTag = uint64_t{1} << 42;  // | the standing receive's entry
constexpr uint64_t kAcceptTag = uint64_t{1} << 43;    // | the standing accept's entry
// | the send_datagrams call's round << 24 | the datagram's index in it
constexpr uint64_t kDatagramTag = uint64_t{1} << 44;
// Socket::standing of a listener: its entry in the accept table, not the receive table.
constexpr uint32_t kAcceptEntry = uint32_t{1} << 31;
// An operation waiting on its socket's standing receive, not on a request of its own.
constexpr uint32_t kParked = UINT32_MAX;
constexpr unsigned kBufferCount = 1024;
constexpr unsigned kBufferSize = 4096;
constexpr unsigned kMaxUnread = 4;               // buffers held for a socket nobody is reading
constexpr unsigned kReserve = kBufferCount / 4;  // free buffers kept for sockets being read
// A burst larger than this (a fast sender's bytes between two turns) stays in the ring for a reader
// that is taking it: copied out, it would be that much heap per connection.
constexpr unsigned kMaxSpilled = 2 * kMaxUnread;
constexpr size_t kMaxUnaccepted = 64;  // connections held for a listener nobody accepts on

// A socket's multishot receive and the bytes it brought that nobody has read yet.
struct Standing {
  Socket* socket = nullptr;  // nullptr once the socket is gone (the entry frees at the last CQE)
  Received received;
  int end = 0;            // once the peer closed: 1; after a receive error: -errno
  bool live = false;      // the kernel request still posts completions
  bool stopping = false;  // cancelled because nobody reads
  bool behind = false;    // its reader fell behind: one-shot reads until one comes up short
};

// A listener's multishot accept and the connections it brought that nobody has taken yet.
struct StandingAccept {
  Socket* socket = nullptr;  // nullptr once the listener is gone
  std::deque<int> accepted;
  int error = 0;  // what ended the last request (EMFILE, say), for the next accept
  bool live = false;
  bool stopping = false;
};

class UringReactor final : public Reactor {
 public:
  UringReactor(const io_uring& ring, int wake_fd, bool disabled,
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
  ~UringReactor() override {
    io_uring_queue_exit(&ring_);
    ::close(wake_fd_);
  }

  void attach(Socket&) override {}

  void detach(Socket& socket) override {
    orphan_all(socket);
    if (socket.standing & kAcceptEntry) {
      drop_accept(socket);
    } else {
      drop_standing(socket);
    }
  }

  bool submit(IoOp& op) override {
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
    if (buffers_ && (op.kind == OpKind::kRead || op.kind == OpKind::kPollIn)) return receive(op);
    if (buffers_ && op.kind == OpKind::kAccept) return accept(op);
    queue(op);
    arm_deadline(op);
    return false;
  }

  // Like epoll: the parked operations complete with -ECANCELED after the current batch.
  void cancel(Socket& socket) override {
    for (IoOp* op : orphan_all(socket)) {
      if (op == nullptr) continue;
      op->result = -ECANCELED;
      enqueue(*op);
    }
  }

  void run(const Hooks& hooks) override {
    current_ = this;
    if (std::exchange(disabled_, false)) enable_rings();
    arm_wake();
    while (!stopping_.load(std::memory_order_relaxed)) {
      __kernel_timespec wait{};
      if (timers_.empty()) {
        wait.tv_sec = 1;
      } else {
        wait.tv_nsec = static_cast<long long>(TimerWheel::kTickMs) * 1'000'000;
      }
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

  void stop() override {
    stopping_.store(true, std::memory_order_relaxed);
    wake();
  }

  void wake() override {
    uint64_t one = 1;
    [[maybe_unused]] ssize_t n = ::write(wake_fd_, &one, sizeof one);
  }

  uint64_t now_ms() const override { return now_; }

  // A close or stray bytes end an idle connection; the standing receive has seen them if any.
  bool peer_closed(Socket& socket) override {
    if (socket.standing != 0) {
      const Standing& standing = standing_[socket.standing - 1];
      if (deliverable(standing)) return true;
      if (standing.live) return false;
    }
    char byte;
    ssize_t n = ::recv(socket.fd(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    return n >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK);
  }

  long try_read(Socket& socket, char* buffer, size_t length) override {
    if (socket.standing != 0) {
      Standing& standing = standing_[socket.standing - 1];
      if (!standing.received.empty()) {
        return static_cast<long>(buffers_->copy_out(standing.received, buffer, length));
      }
      if (standing.end != 0) return standing.end > 0 ? 0 : standing.end;
      if (standing.live) return -EAGAIN;
    }
    ssize_t n = ::recv(socket.fd(), buffer, length, 0);
    if (n >= 0) return n;
    return errno == EWOULDBLOCK ? -EAGAIN : -errno;
  }

  const char* name() const override { return "io_uring"; }

  void count_buffer_shortages_into(std::atomic<uint64_t>* counter) override {
    shortages_ = counter;
  }

  // One SENDMSG request each, handed to the kernel at once with the turn's queued work. With
  // MSG_DONTWAIT a send that cannot go completes with -EAGAIN instead of waiting in the kernel,
  // so all complete inline; the wait is bounded all the same, and a late completion is dropped.
  void send_datagrams(std::span<Datagram> datagrams) override {
    ++send_round_;
    sending_ = datagrams.data();
    unsent_ = datagrams.size();
    for (size_t i = 0; i < datagrams.size(); ++i) {
      datagrams[i].result = -EAGAIN;
      io_uring_sqe* sqe = next_sqe();
      io_uring_prep_sendmsg(sqe, datagrams[i].fd, &datagrams[i].message,
                            MSG_DONTWAIT | MSG_NOSIGNAL);
      io_uring_sqe_set_data64(sqe, kDatagramTag | uint64_t{send_round_} << 24 | i);
    }
    io_uring_submit(&ring_);
    for (int tries = 0; unsent_ > 0 && tries < 100; ++tries) {
      reap();
      if (unsent_ == 0) break;
      __kernel_timespec wait{.tv_sec = 0, .tv_nsec = 1'000'000};
      io_uring_cqe* first = nullptr;
      io_uring_submit_and_wait_timeout(&ring_, &first, 1, &wait, nullptr);
    }
    sending_ = nullptr;
  }

 private:
  // Operations cancelled just before stop() (a listener's accept, say) complete only when the
  // kernel answers; wait briefly for that so their coroutines can finish and free their frames.
  void finish_cancellations() {
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
  std::array<IoOp*, 2> orphan_all(Socket& socket) {
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

  // A read or readiness wait served by the socket's standing receive (see the top).
  bool receive(IoOp& op) {
    Socket& socket = *op.socket;
    if (socket.standing == 0) socket.standing = new_standing(socket) + 1;
    const uint32_t index = socket.standing - 1;
    if (deliverable(standing_[index])) {
      op.result = take(standing_[index], op);
      return true;
    }
    if (standing_[index].live || (!standing_[index].behind && arm(index))) {
      op.slot = kParked;
      socket.reader = &op;
    } else {
      queue(op);
    }
    arm_deadline(op);
    return false;
  }

  static bool deliverable(const Standing& standing) {
    return !standing.received.empty() || standing.end != 0;
  }

  long take(Standing& standing, const IoOp& op) {
    if (op.kind == OpKind::kPollIn) return 0;
    if (!standing.received.empty()) {
      return static_cast<long>(buffers_->copy_out(standing.received, op.buffer, op.length));
    }
    return standing.end > 0 ? 0 : standing.end;
  }

  uint32_t new_standing(Socket& socket) {
    uint32_t index;
    if (free_standing_.empty()) {
      index = static_cast<uint32_t>(standing_.size());
      standing_.emplace_back();
    } else {
      index = free_standing_.back();
      free_standing_.pop_back();
      standing_[index] = Standing{};
    }
    standing_[index].socket = &socket;
    return index;
  }

  // Starts the socket's multishot receive; false when no buffer is left to receive into.
  bool arm(uint32_t index) {
    if (buffers_->available() == 0) {
      count_shortage();
      return false;
    }
    io_uring_sqe* sqe = next_sqe();
    Standing& standing = standing_[index];
    io_uring_prep_recv_multishot(sqe, standing.socket->fd(), nullptr, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = ProvidedBuffers::kGroup;
    // A read is asked for when the bytes are not there yet: wait before trying.
    sqe->ioprio |= IORING_RECVSEND_POLL_FIRST;
    io_uring_sqe_set_data64(sqe, kStandingTag | index);
    standing.live = true;
    standing.stopping = false;
    return true;
  }

  void complete_standing(const io_uring_cqe& cqe) {
    const auto index = static_cast<uint32_t>(cqe.user_data);
    Standing& standing = standing_[index];
    const bool more = (cqe.flags & IORING_CQE_F_MORE) != 0;
    if (cqe.flags & IORING_CQE_F_BUFFER) {
      const auto id = static_cast<uint16_t>(cqe.flags >> IORING_CQE_BUFFER_SHIFT);
      if (standing.socket != nullptr && cqe.res > 0) {
        buffers_->append(standing.received, id, static_cast<uint32_t>(cqe.res));
      } else {
        buffers_->discard(id);
      }
    } else if (cqe.res == -ENOBUFS) {
      count_shortage();
    } else if (!more && cqe.res != -ECANCELED && cqe.res != -EAGAIN) {
      standing.end = cqe.res == 0 ? 1 : cqe.res;  // an -EAGAIN end: see retries_on_eagain
    }
    if (!more) standing.live = false;
    if (standing.socket == nullptr) {
      if (!standing.live) free_standing_.push_back(index);
      return;
    }
    serve_reader(index);
  }

  void serve_reader(uint32_t index) {
    Standing& standing = standing_[index];
    IoOp* op = standing.socket->reader;
    if (op == nullptr || op->slot != kParked) {
      if (standing.live && !standing.stopping && standing.received.count >= kMaxUnread) {
        standing.stopping = true;
        standing.behind = true;
        cancel_request(kStandingTag | index);
      } else if (!standing.live && standing.received.count <= kMaxSpilled &&
                 buffers_->available() < kReserve) {
        buffers_->spill(standing.received);
      }
      return;
    }
    if (deliverable(standing)) {
      standing.socket->reader = nullptr;
      timers_.cancel(op->timer);
      op->result = take(standing, *op);
      enqueue(*op);
    } else if (!standing.live && (standing.behind || !arm(index))) {
      standing.socket->reader = nullptr;
      queue(*op);  // keeps its deadline
    }
  }

  // Ends the socket's standing receive (before its fd closes) and hands its buffers back.
  void drop_standing(Socket& socket) {
    if (socket.standing == 0) return;
    const uint32_t index = std::exchange(socket.standing, 0) - 1;
    Standing& standing = standing_[index];
    buffers_->release(standing.received);
    standing.socket = nullptr;
    if (!standing.live) {
      free_standing_.push_back(index);
      return;
    }
    cancel_request(kStandingTag | index);
    io_uring_submit(&ring_);
  }

  bool accept(IoOp& op) {
    Socket& socket = *op.socket;
    if (socket.standing == 0) socket.standing = new_accept(socket) | kAcceptEntry;
    const uint32_t index = socket.standing & ~kAcceptEntry;
    if (take_accepted(accepts_[index], op)) return true;
    if (!accepts_[index].live) arm_accept(index);
    op.slot = kParked;
    socket.reader = &op;
    arm_deadline(op);
    return false;
  }

  static bool take_accepted(StandingAccept& standing, IoOp& op) {
    if (!standing.accepted.empty()) {
      op.result = standing.accepted.front();
      standing.accepted.pop_front();
      return true;
    }
    if (standing.error == 0) return false;
    op.result = std::exchange(standing.error, 0);
    return true;
  }

  uint32_t new_accept(Socket& socket) {
    auto gone = std::find_if(accepts_.begin(), accepts_.end(), [](const StandingAccept& a) {
      return a.socket == nullptr && !a.live;
    });
    if (gone == accepts_.end()) gone = accepts_.emplace(accepts_.end());
    *gone = StandingAccept{};
    gone->socket = &socket;
    return static_cast<uint32_t>(gone - accepts_.begin());
  }

  void arm_accept(uint32_t index) {
    io_uring_sqe* sqe = next_sqe();
    io_uring_prep_multishot_accept(sqe, accepts_[index].socket->fd(), nullptr, nullptr,
                                   SOCK_NONBLOCK | SOCK_CLOEXEC);
    io_uring_sqe_set_data64(sqe, kAcceptTag | index);
    accepts_[index].live = true;
    accepts_[index].stopping = false;
  }

  void complete_accept(const io_uring_cqe& cqe) {
    const auto index = static_cast<uint32_t>(cqe.user_data);
    StandingAccept& standing = accepts_[index];
    const bool more = (cqe.flags & IORING_CQE_F_MORE) != 0;
    if (!more) standing.live = false;
    if (cqe.res >= 0) {
      if (standing.socket == nullptr) {
        ::close(cqe.res);
        return;
      }
      standing.accepted.push_back(cqe.res);
    } else if (standing.socket != nullptr && cqe.res != -ECANCELED) {
      standing.error = cqe.res;
    }
    if (standing.socket == nullptr) return;
    IoOp* op = standing.socket->reader;
    if (op != nullptr && op->slot == kParked) {
      if (take_accepted(standing, *op)) {
        standing.socket->reader = nullptr;
        timers_.cancel(op->timer);
        enqueue(*op);
      } else if (!standing.live) {
        arm_accept(index);
      }
    } else if (standing.live && !standing.stopping && standing.accepted.size() >= kMaxUnaccepted) {
      standing.stopping = true;
      cancel_request(kAcceptTag | index);
    }
  }

  void drop_accept(Socket& socket) {
    const uint32_t index = std::exchange(socket.standing, 0) & ~kAcceptEntry;
    StandingAccept& standing = accepts_[index];
    for (int fd : standing.accepted) ::close(fd);
    standing.accepted.clear();
    standing.socket = nullptr;
    if (!standing.live) return;
    cancel_request(kAcceptTag | index);
    io_uring_submit(&ring_);
  }

  void complete_datagram(const io_uring_cqe& cqe) {
    const auto round = static_cast<uint16_t>(cqe.user_data >> 24);
    if (sending_ == nullptr || round != send_round_) return;
    sending_[cqe.user_data & 0xFFFFFF].result = cqe.res;
    --unsent_;
  }

  void count_shortage() {
    if (shortages_ == nullptr) return;
    shortages_->store(shortages_->load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }

  void expire_parked(IoOp& op) {
    op.socket->reader = nullptr;
    op.result = -ETIMEDOUT;
    enqueue(op);
  }

  // io_uring's own splice cannot wait on a non-blocking socket (it answers -EAGAIN), so a splice
  // waits for readiness here and then moves the bytes with splice(2).
  static bool is_splice(OpKind kind) {
    return kind == OpKind::kSpliceIn || kind == OpKind::kSpliceOut;
  }

  void queue(IoOp& op) {
    io_uring_sqe* sqe = next_sqe();
    prepare(*sqe, op);
    op.slot = take_slot(op);
    io_uring_sqe_set_data64(sqe, op.slot + 1);
    (is_read_side(op.kind) ? op.socket->reader : op.socket->writer) = &op;
  }

  static void prepare(io_uring_sqe& sqe, IoOp& op) {
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
        break;
    }
  }

  // liburing 2.3 declares io_uring_enable_rings but does not export it.
  void enable_rings() {
    ::syscall(__NR_io_uring_register, ring_.ring_fd, IORING_REGISTER_ENABLE_RINGS, nullptr, 0);
  }

  // Handles every completion waiting in the queue; returns how many there were.
  unsigned reap() {
    unsigned head, count = 0;
    io_uring_cqe* cqe;
    io_uring_for_each_cqe(&ring_, head, cqe) {
      ++count;
      complete(*cqe);
    }
    io_uring_cq_advance(&ring_, count);
    return count;
  }

  void complete(const io_uring_cqe& cqe) {
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
    if (op->aborted && result == -ECANCELED) result = -op->aborted;
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

  static bool retries_on_eagain(OpKind kind) {
    return kind == OpKind::kRead || kind == OpKind::kWrite || kind == OpKind::kWritev ||
           is_splice(kind);
  }

  static long connect_result(Socket& socket) {
    int error = 0;
    socklen_t len = sizeof error;
    if (::getsockopt(socket.fd(), SOL_SOCKET, SO_ERROR, &error, &len) < 0) return -errno;
    return error ? -error : 0;
  }

  io_uring_sqe* next_sqe() {
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    if (sqe == nullptr) {  // the queue is full: hand this turn's work to the kernel now
      io_uring_submit(&ring_);
      sqe = io_uring_get_sqe(&ring_);
    }
    return sqe;
  }

  uint32_t take_slot(IoOp& op) {
    if (free_slots_.empty()) {
      slots_.push_back(&op);
      return static_cast<uint32_t>(slots_.size() - 1);
    }
    uint32_t index = free_slots_.back();
    free_slots_.pop_back();
    slots_[index] = &op;
    return index;
  }

  void cancel_request(uint64_t user_data) {
    io_uring_sqe* sqe = next_sqe();
    io_uring_prep_cancel64(sqe, user_data, 0);
    io_uring_sqe_set_data64(sqe, kIgnoreTag);
  }

  // The completion arrives once the kernel lets go; it then reports `reason`.
  void abort(IoOp& op, int reason) {
    if (op.aborted) return;
    op.aborted = reason;
    ++aborting_;
    cancel_request(op.slot + 1);
  }

  void arm_wake() {
    io_uring_sqe* sqe = next_sqe();
    io_uring_prep_poll_multishot(sqe, wake_fd_, POLLIN);
    io_uring_sqe_set_data64(sqe, kWakeTag);
  }

  void arm_deadline(IoOp& op) {
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

  void enqueue(IoOp& op) {
    op.next_ready = nullptr;
    if (ready_tail_) {
      ready_tail_->next_ready = &op;
    } else {
      ready_head_ = &op;
    }
    ready_tail_ = &op;
  }

  void resume_ready() {
    while (IoOp* op = ready_head_) {
      ready_head_ = op->next_ready;
      if (!ready_head_) ready_tail_ = nullptr;
      op->waiter.resume();
    }
  }

 public:
  static thread_local UringReactor* current_;

 private:
  io_uring ring_;
  int wake_fd_;
  bool disabled_;  // created disabled: the thread that first runs it enables it
  std::unique_ptr<ProvidedBuffers> buffers_;  // nullptr: one-shot receives only (before 6.0)
  std::vector<Standing> standing_;            // standing receives by entry
  std::vector<uint32_t> free_standing_;
  std::vector<StandingAccept> accepts_;  // one per listener
  uint64_t now_;
  TimerWheel timers_;
  std::vector<IoOp*> slots_;  // in-flight operations by slot; nullptr once orphaned
  std::vector<uint32_t> free_slots_;
  IoOp* ready_head_ = nullptr;
  IoOp* ready_tail_ = nullptr;
  size_t aborting_ = 0;  // cancels sent whose operation has not completed yet
  std::atomic<uint64_t>* shortages_ = nullptr;  // the worker's metric; written by this thread
  bool woken_ = false;                          // another thread's wake() was seen this turn
  Datagram* sending_ = nullptr;                 // send_datagrams' datagrams while it runs
  size_t unsent_ = 0;
  uint16_t send_round_ = 0;
  std::atomic<bool> stopping_{false};
};

thread_local UringReactor* UringReactor::current_ = nullptr;

// The operations the backend uses; a kernel (or seccomp profile) without one gets epoll.
bool supports_all(io_uring& ring, std::string& missing) {
  io_uring_probe* probe = io_uring_get_probe_ring(&ring);
  if (probe == nullptr) {
    missing = "no opcode probe";
    return false;
  }
  const std::pair<int, const char*> needed[] = {
      {IORING_OP_RECV, "recv"},         {IORING_OP_SEND, "send"},
      {IORING_OP_WRITEV, "writev"},     {IORING_OP_ACCEPT, "accept"},
      {IORING_OP_POLL_ADD, "poll_add"}, {IORING_OP_ASYNC_CANCEL, "async_cancel"},
      {IORING_OP_SENDMSG, "sendmsg"}};
  for (const auto& [opcode, name] : needed) {
    if (!io_uring_opcode_supported(probe, opcode)) missing += std::string(" ") + name;
  }
  io_uring_free_probe(probe);
  return missing.empty();
}

}  // namespace

std::unique_ptr<Reactor> make_uring_reactor(std::string& error) {
  // Best first: one thread submits (6.0+), the ring created disabled so that the worker thread
  // that runs it, not the thread that built it, becomes that submitter; cooperative task work
  // (5.19+). Deferred task work (6.1) is left out on purpose: it cost nothing in CPU here but
  // doubled the p99 at 1000 connections (docs/benchmarks.md).
  const unsigned tiers[] = {
      IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN | IORING_SETUP_R_DISABLED,
      IORING_SETUP_COOP_TASKRUN, 0};
  io_uring ring{};
  io_uring_params params{};
  int rc = -EINVAL;
  for (unsigned flags : tiers) {
    params = {};
    params.flags = IORING_SETUP_CQSIZE | flags;
    params.cq_entries = kQueueDepth * 4;
    rc = io_uring_queue_init_params(kQueueDepth, &ring, &params);
    if (rc != -EINVAL) break;
  }
  if (rc < 0) {
    error = std::string("io_uring_setup: ") + std::strerror(-rc);
    return nullptr;
  }
  std::string missing;
  if (!(params.features & IORING_FEAT_EXT_ARG) || !supports_all(ring, missing)) {
    error = "io_uring lacks" + (missing.empty() ? std::string(" timed waits") : missing);
    io_uring_queue_exit(&ring);
    return nullptr;
  }
  int wake_fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake_fd < 0) {
    error = std::string("eventfd: ") + std::strerror(errno);
    io_uring_queue_exit(&ring);
    return nullptr;
  }
  // Multishot receive came with 6.0, as did the single-issuer flag of the first tier.
  std::unique_ptr<ProvidedBuffers> buffers;
  if (params.flags & IORING_SETUP_SINGLE_ISSUER) {
    buffers = std::make_unique<ProvidedBuffers>();
    std::string why;
    if (!buffers->init(ring, kBufferCount, kBufferSize, why)) buffers.reset();
  }
  return std::make_unique<UringReactor>(
      ring, wake_fd, (params.flags & IORING_SETUP_R_DISABLED) != 0, std::move(buffers));
}

}  // namespace usher::net
