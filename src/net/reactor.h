#pragma once
// The event loop of one worker, behind a completion-style interface ("read into this buffer and
// wake me"), so that a readiness backend (epoll) and a completion backend (io_uring) fit alike.
// Thread rule: a reactor and everything attached to it belong to the thread that runs it; only
// wake() may be called from other threads.
#include <sys/socket.h>
#include <sys/uio.h>

#include <atomic>
#include <coroutine>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>

#include "net/timer_wheel.h"

namespace usher::net {

class Socket;

enum class OpKind : uint8_t {
  kRead,
  kWrite,
  kWritev,
  kAccept,
  kConnect,
  kPollIn,
  kWaitIn,  // readable, nothing received: for a socket its owner reads itself (recvmmsg)
  kSleep,
  kSpliceIn,    // socket -> pipe_fd
  kSpliceOut,   // pipe_fd -> socket
  kEndReceive,  // the reactor takes no more bytes from the socket (before splicing from it)
};

inline bool is_read_side(OpKind kind) {
  return kind == OpKind::kRead || kind == OpKind::kAccept || kind == OpKind::kPollIn ||
         kind == OpKind::kWaitIn || kind == OpKind::kSpliceIn || kind == OpKind::kEndReceive;
}

// One datagram for Reactor::send_datagrams: its socket and message (msg_name null on a
// connected socket; control data such as UDP_SEGMENT, which makes it several), and then what
// became of it.
struct Datagram {
  int fd = -1;
  msghdr message{};
  long result = 0;  // bytes sent, or -errno
};

struct IoOp;
// One non-blocking splice(2) of a kSpliceIn/kSpliceOut op: bytes moved or -errno (-EAGAIN).
long splice_once(const IoOp& op);

// One outstanding operation; it lives in the awaiting coroutine's frame.
struct IoOp {
  explicit IoOp(OpKind k) : kind(k) {}
  OpKind kind;
  Socket* socket = nullptr;
  char* buffer = nullptr;
  size_t length = 0;
  const iovec* iov = nullptr;
  int iov_count = 0;
  uint64_t deadline_ms = 0;  // 0: none
  long result = 0;           // >= 0 on success, -errno on failure (-ETIMEDOUT on deadline)
  int pipe_fd = -1;          // splice ops: the pipe end on the other side
  uint32_t slot = 0;         // io_uring backend: its entry in the in-flight table
  int aborted = 0;           // io_uring backend: ETIMEDOUT or ECANCELED once a cancel is sent
  std::coroutine_handle<> waiter{};
  TimerEntry timer{};
  IoOp* next_ready = nullptr;
};

class Reactor {
 public:
  virtual ~Reactor() = default;

  virtual void attach(Socket& socket) = 0;
  virtual void detach(Socket& socket) = 0;
  // Starts op; returns true if it completed at once (the caller does not suspend).
  virtual bool submit(IoOp& op) = 0;
  // Completes the socket's parked operations with -ECANCELED (after the current batch).
  virtual void cancel(Socket& socket) = 0;
  // Ends a parked kSleep op before its deadline (result 0); its coroutine resumes in this turn.
  virtual void end_sleep(IoOp& op) = 0;
  // A listener stops taking connections from the kernel: its accept then yields those already
  // taken (io_uring's multishot accept runs ahead of the accept loop), then -ECANCELED. What is
  // still queued in the kernel stays there, for whoever else holds the socket (an upgrade).
  virtual void stop_accepting(Socket& socket) { cancel(socket); }
  struct Hooks {
    std::function<void()> on_wake;  // after another thread called wake()
    std::function<void()> on_idle;  // when a wait ended with nothing to do
    // Whether on_idle has work waiting (buffered log lines): the loop then waits at most
    // kIdleWorkWaitMs for events instead of a second, so that work is done that soon.
    std::function<bool()> idle_work_waiting;
    // When the turn's coroutines have run, before the loop waits again; true when it did work
    // that may have completed operations (then the turn goes on, and it is called again).
    std::function<bool()> on_turn_end;
  };
  static constexpr int kIdleWorkWaitMs = 100;
  // Runs until stop(); the hooks run on the loop thread.
  virtual void run(const Hooks& hooks) = 0;
  virtual void stop() = 0;
  virtual void wake() = 0;
  virtual uint64_t now_ms() const = 0;
  // Whether an idle connection's peer has closed it (or sent bytes nobody asked for).
  virtual bool peer_closed(Socket& socket) = 0;
  // Bytes already received for the socket, without parking: -EAGAIN when there are none.
  virtual long try_read(Socket& socket, char* buffer, size_t length) = 0;
  // Sends every datagram now (non-blocking: a full socket buffer is -EAGAIN), with no point
  // between them where a receiver a datagram woke could take the core: sendmmsg(2) has one
  // after each datagram, and where peers share a core the receiver takes it there, one datagram
  // at a time. io_uring issues them as SENDMSG requests in one io_uring_enter; epoll sends the
  // connected ones in one io_submit (Linux AIO) where it can. Each datagram's result is set.
  virtual void send_datagrams(std::span<Datagram> datagrams) = 0;
  virtual const char* name() const = 0;
  // Where to count receives that found every receive buffer taken (io_uring's shared ring; epoll
  // receives into the reader's own buffer and never runs short). Written by the loop thread.
  virtual void count_buffer_shortages_into(std::atomic<uint64_t>*) {}
};

enum class IoBackend : uint8_t { kAuto, kIoUring, kEpoll };

// kBatched sends a turn's writes in one io_submit (Linux AIO) where the kernel allows it, and
// one syscall each otherwise; loops with few writes (admin, health checks) need no AIO context.
enum class EpollWrites : uint8_t { kBatched, kOneByOne };
std::unique_ptr<Reactor> make_epoll_reactor(EpollWrites writes = EpollWrites::kBatched);
// nullptr (and why, in `error`) when the kernel or a seccomp profile refuses io_uring.
std::unique_ptr<Reactor> make_uring_reactor(std::string& error);
// kAuto: io_uring when the kernel allows it, else epoll. nullptr only when kIoUring was asked
// for and is unavailable (`error` says why).
std::unique_ptr<Reactor> make_reactor(IoBackend backend, std::string& error);

uint64_t monotonic_ms();

// Suspends the calling coroutine until the op completes; yields its result.
class OpAwaitable {
 public:
  OpAwaitable(Reactor& reactor, const IoOp& op) : reactor_(reactor), op_(op) {}
  bool await_ready() const noexcept { return false; }
  bool await_suspend(std::coroutine_handle<> waiter) {
    op_.waiter = waiter;
    return !reactor_.submit(op_);
  }
  long await_resume() const noexcept { return op_.result; }

 private:
  Reactor& reactor_;
  IoOp op_;
};

inline OpAwaitable sleep_until(Reactor& reactor, uint64_t deadline_ms) {
  IoOp op(OpKind::kSleep);
  op.deadline_ms = deadline_ms;
  return OpAwaitable(reactor, op);
}

}  // namespace usher::net
