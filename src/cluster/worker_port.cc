#include <chrono>

#include "cluster/service.h"

namespace usher::cluster {

WorkerPort::WorkerPort(Service& service, net::Reactor& reactor, size_t index)
    : service_(service), reactor_(reactor), index_(index) {}

bool WorkerPort::redis_up() const {
  return service_.redis_up();
}

bool WorkerPort::send(LeaseRequest request) {
  if (!requests_.push(std::move(request))) return false;
  service_.wake();
  return true;
}

// Redis's answers to this worker's lease asks: each key's table learns its lease (or that none
// came) and the requests waiting on the key go on in this turn.
void WorkerPort::deliver() {
  const auto now_us = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                                std::chrono::steady_clock::now().time_since_epoch())
                                                .count());
  while (std::optional<LeaseReply> reply = replies_.pop()) {
    LeaseTable& table = reply->limit->table(index_);
    std::vector<LeaseWaiter*> waiters =
        reply->unanswered ? table.abandon(reply->answer.key) : table.answer(reply->answer, now_us);
    for (LeaseWaiter* w : waiters) w->wake();
  }
}

}  // namespace usher::cluster
