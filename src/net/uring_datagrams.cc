#include "net/uring_reactor.h"

#include <sys/socket.h>

#include <cerrno>

namespace usher::net {

// One SENDMSG request each, handed to the kernel at once with the turn's queued work. With
// MSG_DONTWAIT a send that cannot go completes with -EAGAIN instead of waiting in the kernel,
// so all complete inline; the wait is bounded all the same, and a late completion is dropped.
void UringReactor::send_datagrams(std::span<Datagram> datagrams) {
  ++send_round_;
  sending_ = datagrams.data();
  unsent_ = datagrams.size();
  for (size_t i = 0; i < datagrams.size(); ++i) {
    datagrams[i].result = -EAGAIN;
    io_uring_sqe* sqe = next_sqe();
    io_uring_prep_sendmsg(sqe, datagrams[i].fd, &datagrams[i].message, MSG_DONTWAIT | MSG_NOSIGNAL);
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

void UringReactor::complete_datagram(const io_uring_cqe& cqe) {
  const auto round = static_cast<uint16_t>(cqe.user_data >> 24);
  if (sending_ == nullptr || round != send_round_) return;
  sending_[cqe.user_data & 0xFFFFFF].result = cqe.res;
  --unsent_;
}

}  // namespace usher::net
