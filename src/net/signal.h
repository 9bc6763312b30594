#pragma once
// One coroutine waits for another on the same worker to tell it something changed, or for its
// deadline. A notify with nobody waiting is remembered, so that a change between two waits is
// never lost. The waiter resumes in the reactor's turn, never inside notify(): the notifier may
// be in the middle of a codec callback that must not be re-entered. Worker thread only.
#include <cerrno>
#include <coroutine>
#include <cstdint>

#include "net/reactor.h"

namespace usher::net {

class Signal {
 public:
  explicit Signal(Reactor& reactor) : reactor_(reactor) {}
  Signal(const Signal&) = delete;
  Signal& operator=(const Signal&) = delete;

  class Wait {
   public:
    Wait(Signal& signal, uint64_t deadline_ms) : signal_(signal), op_(OpKind::kSleep) {
      op_.deadline_ms = deadline_ms;
    }
    bool await_ready() noexcept {
      if (!signal_.pending_) return false;
      signal_.pending_ = false;
      return true;
    }
    bool await_suspend(std::coroutine_handle<> waiter) {
      op_.waiter = waiter;
      signal_.waiting_ = &op_;
      return !signal_.reactor_.submit(op_);
    }
    // 0 when notified, -ETIMEDOUT when the deadline passed first.
    long await_resume() noexcept {
      if (signal_.waiting_ == &op_) signal_.waiting_ = nullptr;
      return op_.result;
    }

   private:
    Signal& signal_;
    IoOp op_;
  };

  // Suspends until notify() or deadline_ms (0: none).
  Wait wait(uint64_t deadline_ms = 0) { return Wait(*this, deadline_ms); }

  void notify() {
    IoOp* op = waiting_;
    // A deadline that fired already queued the waiter: it must not be queued twice.
    if (op && (op->deadline_ms == 0 || op->timer.armed())) {
      waiting_ = nullptr;
      reactor_.end_sleep(*op);
    } else if (!op) {
      pending_ = true;
    }
  }
  bool waiting() const { return waiting_ != nullptr; }

 private:
  Reactor& reactor_;
  IoOp* waiting_ = nullptr;
  bool pending_ = false;
};

}  // namespace usher::net
