#pragma once
// The operations a loop turn completed, waiting for their coroutines to resume, in the order
// they completed: an intrusive list through IoOp::next_ready, so that queueing allocates nothing.
// Both reactors keep one; a coroutine resumed from it may queue more, which run in the same turn.
#include "net/reactor.h"

namespace usher::net {

class ReadyQueue {
 public:
  void push(IoOp& op) {
    op.next_ready = nullptr;
    if (tail_) {
      tail_->next_ready = &op;
    } else {
      head_ = &op;
    }
    tail_ = &op;
  }

  bool empty() const { return head_ == nullptr; }

  void resume_all() {
    while (IoOp* op = head_) {
      head_ = op->next_ready;
      if (!head_) tail_ = nullptr;
      op->waiter.resume();
    }
  }

 private:
  IoOp* head_ = nullptr;
  IoOp* tail_ = nullptr;
};

}  // namespace usher::net
