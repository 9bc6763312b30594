#pragma once
// Internal to src/net: the epoll backend's reactor, declared for the files that implement it,
// one job each. The rest of the program makes one with make_epoll_reactor (reactor.h).
#include <atomic>
#include <memory>
#include <span>
#include <vector>

#include "net/aio_batch.h"
#include "net/reactor.h"
#include "net/ready_queue.h"
#include "net/socket.h"
#include "net/timer_wheel.h"

namespace usher::net {

class EpollReactor final : public Reactor {
 public:
  explicit EpollReactor(EpollWrites writes);
  ~EpollReactor() override;

  void attach(Socket& socket) override;
  void detach(Socket& socket) override;
  bool submit(IoOp& op) override;
  void run(const Hooks& hooks) override;
  void cancel(Socket& socket) override;
  void end_sleep(IoOp& op) override {
    timers_.cancel(op.timer);
    op.result = 0;
    enqueue(op);
  }
  void stop_accepting(Socket& socket) override;
  void stop() override;
  void wake() override;
  uint64_t now_ms() const override { return now_; }
  bool peer_closed(Socket& socket) override { return socket.peer_closed; }
  long try_read(Socket& socket, char* buffer, size_t length) override;
  void send_datagrams(std::span<Datagram> datagrams) override;
  const char* name() const override { return aio_ ? "epoll+aio" : "epoll"; }

 private:
  // The loop (epoll_reactor.cc).
  static long attempt(IoOp& op);
  bool start(IoOp& op);
  bool settle(IoOp& op, long result);
  bool wait_in(IoOp& op);
  void serve_next_turn();
  void park(IoOp& op);
  void control(Socket& socket, int op, uint32_t events);
  void watch_writable(Socket& socket);
  void arm_deadline(IoOp& op);
  void dispatch(Socket& socket, uint32_t events);
  void retry(IoOp*& slot);
  void resume_ready();

  // The turn's writes, sent together (epoll_writes.cc).
  void finish_turn();
  void send_through_aio();
  void forget_deferred_write(Socket& socket);

  // Called from both files, once an operation or more: defined here so that each inlines it.
  void enqueue(IoOp& op) { ready_.push(op); }

 public:
  // The timer callback has no context pointer; the reactor running on this thread is it.
  static thread_local EpollReactor* current_;

 private:
  int epoll_fd_ = -1;
  int wake_fd_ = -1;
  uint64_t now_;
  TimerWheel timers_;
  ReadyQueue ready_;
  std::vector<IoOp*> deferred_writes_;  // this turn's, in the order they were made
  std::vector<IoOp*> flushing_;
  std::vector<Socket*> next_turn_;  // readiness waits to complete next turn (wait_in)
  std::vector<Socket*> serving_turn_;
  std::unique_ptr<AioBatch> aio_;  // null: writes go one syscall each
  std::atomic<bool> stopping_{false};
};

}  // namespace usher::net
