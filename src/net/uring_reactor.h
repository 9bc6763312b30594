#pragma once
// Internal to src/net: the io_uring backend's reactor, declared for the files that implement it,
// one job each. The rest of the program makes one with make_uring_reactor (reactor.h).
#include <liburing.h>

#include <array>
#include <atomic>
#include <deque>
#include <memory>
#include <span>
#include <vector>

#include "net/reactor.h"
#include "net/ready_queue.h"
#include "net/socket.h"
#include "net/timer_wheel.h"
#include "net/uring_buffers.h"

namespace usher::net {

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

// A socket's multishot receive and the bytes it brought that nobody has read yet.
struct Standing {
  Socket* socket = nullptr;  // nullptr once the socket is gone (the entry frees at the last CQE)
  Received received;
  int end = 0;            // once the peer closed: 1; after a receive error: -errno
  bool live = false;      // the kernel request still posts completions
  bool stopping = false;  // cancelled because nobody reads
  bool behind = false;    // its reader fell behind: one-shot reads until one comes up short
  bool ended = false;     // end_receive(): the owner splices; reads give only what is held
};

// A listener's multishot accept and the connections it brought that nobody has taken yet.
struct StandingAccept {
  Socket* socket = nullptr;  // nullptr once the listener is gone
  std::deque<int> accepted;
  int error = 0;  // what ended the last request (EMFILE, say), for the next accept
  bool live = false;
  bool stopping = false;
  bool ending = false;  // stop_accepting(): never armed again
};

class UringReactor final : public Reactor {
 public:
  UringReactor(const io_uring& ring, int wake_fd, bool disabled,
               std::unique_ptr<ProvidedBuffers> buffers);
  ~UringReactor() override;

  void attach(Socket&) override {}
  void detach(Socket& socket) override;
  bool submit(IoOp& op) override;
  void cancel(Socket& socket) override;
  void end_sleep(IoOp& op) override {
    timers_.cancel(op.timer);
    op.result = 0;
    enqueue(op);
  }
  void stop_accepting(Socket& socket) override;
  void run(const Hooks& hooks) override;
  void stop() override;
  void wake() override;
  uint64_t now_ms() const override { return now_; }
  bool peer_closed(Socket& socket) override;
  long try_read(Socket& socket, char* buffer, size_t length) override;
  const char* name() const override { return "io_uring"; }
  void count_buffer_shortages_into(std::atomic<uint64_t>* counter) override {
    shortages_ = counter;
  }
  void send_datagrams(std::span<Datagram> datagrams) override;

 private:
  // The loop (uring_reactor.cc).
  void finish_cancellations();
  std::array<IoOp*, 2> orphan_all(Socket& socket);
  void expire_parked(IoOp& op);
  void queue(IoOp& op);
  void enable_rings();
  unsigned reap();
  void complete(const io_uring_cqe& cqe);
  uint32_t take_slot(IoOp& op);
  void abort(IoOp& op, int reason);
  void arm_wake();
  void arm_deadline(IoOp& op);
  void resume_ready();

  // The standing receive and accept (uring_receive.cc).
  bool receive(IoOp& op);
  bool end_receive(IoOp& op);
  long take(Standing& standing, const IoOp& op);
  uint32_t new_standing(Socket& socket);
  bool arm(uint32_t index);
  void complete_standing(const io_uring_cqe& cqe);
  void serve_reader(uint32_t index);
  void drop_standing(Socket& socket);
  bool accept(IoOp& op);
  uint32_t new_accept(Socket& socket);
  void arm_accept(uint32_t index);
  void complete_accept(const io_uring_cqe& cqe);
  void drop_accept(Socket& socket);
  void count_shortage();

  // Datagrams (uring_datagrams.cc).
  void complete_datagram(const io_uring_cqe& cqe);

  // Called from several files, once an operation or more: defined here so that each inlines them.
  io_uring_sqe* next_sqe() {
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    if (sqe == nullptr) {  // the queue is full: hand this turn's work to the kernel now
      io_uring_submit(&ring_);
      sqe = io_uring_get_sqe(&ring_);
    }
    return sqe;
  }

  void cancel_request(uint64_t user_data) {
    io_uring_sqe* sqe = next_sqe();
    io_uring_prep_cancel64(sqe, user_data, 0);
    io_uring_sqe_set_data64(sqe, kIgnoreTag);
  }

  void enqueue(IoOp& op) { ready_.push(op); }

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
  ReadyQueue ready_;
  size_t aborting_ = 0;  // cancels sent whose operation has not completed yet
  std::atomic<uint64_t>* shortages_ = nullptr;  // the worker's metric; written by this thread
  bool woken_ = false;                          // another thread's wake() was seen this turn
  Datagram* sending_ = nullptr;                 // send_datagrams' datagrams while it runs
  size_t unsent_ = 0;
  uint16_t send_round_ = 0;
  std::atomic<bool> stopping_{false};
};

}  // namespace usher::net
