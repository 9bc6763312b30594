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
#include "net/uring_reactor.h"

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <utility>

namespace usher::net {

namespace {

constexpr unsigned kMaxUnread = 4;               // buffers held for a socket nobody is reading
constexpr unsigned kReserve = kBufferCount / 4;  // free buffers kept for sockets being read
// A burst larger than this (a fast sender's bytes between two turns) stays in the ring for a reader
// that is taking it: copied out, it would be that much heap per connection.
constexpr unsigned kMaxSpilled = 2 * kMaxUnread;
constexpr size_t kMaxUnaccepted = 64;  // connections held for a listener nobody accepts on

bool deliverable(const Standing& standing) {
  return !standing.received.empty() || standing.end != 0;
}

bool take_accepted(StandingAccept& standing, IoOp& op) {
  if (!standing.accepted.empty()) {
    op.result = standing.accepted.front();
    standing.accepted.pop_front();
    return true;
  }
  if (standing.error == 0) return false;
  op.result = std::exchange(standing.error, 0);
  return true;
}

}  // namespace

// A close or stray bytes end an idle connection; the standing receive has seen them if any.
bool UringReactor::peer_closed(Socket& socket) {
  if (socket.standing != 0) {
    const Standing& standing = standing_[socket.standing - 1];
    if (deliverable(standing)) return true;
    if (standing.live) return false;
  }
  char byte;
  ssize_t n = ::recv(socket.fd(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  return n >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK);
}

long UringReactor::try_read(Socket& socket, char* buffer, size_t length) {
  if (socket.standing != 0) {
    Standing& standing = standing_[socket.standing - 1];
    if (!standing.received.empty()) {
      return static_cast<long>(buffers_->copy_out(standing.received, buffer, length));
    }
    if (standing.end != 0) return standing.end > 0 ? 0 : standing.end;
    if (standing.live || standing.ended) return -EAGAIN;
  }
  ssize_t n = ::recv(socket.fd(), buffer, length, 0);
  if (n >= 0) return n;
  return errno == EWOULDBLOCK ? -EAGAIN : -errno;
}

// A read or readiness wait served by the socket's standing receive (see the top).
bool UringReactor::receive(IoOp& op) {
  Socket& socket = *op.socket;
  if (socket.standing == 0) socket.standing = new_standing(socket) + 1;
  const uint32_t index = socket.standing - 1;
  if (deliverable(standing_[index])) {
    op.result = take(standing_[index], op);
    return true;
  }
  if (standing_[index].live ||
      (!standing_[index].behind && !standing_[index].ended && arm(index))) {
    op.slot = kParked;
    socket.reader = &op;
  } else {
    queue(op);
  }
  arm_deadline(op);
  return false;
}

// The socket's owner reads it another way from now on (splice(2)): its standing receive is
// cancelled and never armed again, and the op completes once the last completion is in, so
// nothing the kernel took is left behind the owner's back. It yields 1 when bytes (or the end)
// are still held here for try_read, which gives only those from now on, then -EAGAIN.
bool UringReactor::end_receive(IoOp& op) {
  Socket& socket = *op.socket;
  op.result = 0;
  if (socket.standing == 0 || (socket.standing & kAcceptEntry)) return true;
  const uint32_t index = socket.standing - 1;
  Standing& standing = standing_[index];
  standing.ended = true;
  if (!standing.live) {
    op.result = deliverable(standing) ? 1 : 0;
    return true;
  }
  if (!standing.stopping) {
    standing.stopping = true;
    cancel_request(kStandingTag | index);
  }
  op.slot = kParked;
  socket.reader = &op;
  return false;
}

long UringReactor::take(Standing& standing, const IoOp& op) {
  if (op.kind == OpKind::kPollIn) return 0;
  if (!standing.received.empty()) {
    return static_cast<long>(buffers_->copy_out(standing.received, op.buffer, op.length));
  }
  return standing.end > 0 ? 0 : standing.end;
}

uint32_t UringReactor::new_standing(Socket& socket) {
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
bool UringReactor::arm(uint32_t index) {
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

void UringReactor::complete_standing(const io_uring_cqe& cqe) {
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

void UringReactor::serve_reader(uint32_t index) {
  Standing& standing = standing_[index];
  IoOp* op = standing.socket->reader;
  if (op != nullptr && op->kind == OpKind::kEndReceive) {
    if (standing.live) return;
    standing.socket->reader = nullptr;
    op->result = deliverable(standing) ? 1 : 0;
    enqueue(*op);
    op = nullptr;  // what it holds may still be spilled, below
  }
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
  } else if (!standing.live && (standing.behind || standing.ended || !arm(index))) {
    standing.socket->reader = nullptr;
    queue(*op);  // keeps its deadline
  }
}

// Ends the socket's standing receive (before its fd closes) and hands its buffers back.
void UringReactor::drop_standing(Socket& socket) {
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

bool UringReactor::accept(IoOp& op) {
  Socket& socket = *op.socket;
  if (socket.standing == 0) socket.standing = new_accept(socket) | kAcceptEntry;
  const uint32_t index = socket.standing & ~kAcceptEntry;
  if (take_accepted(accepts_[index], op)) return true;
  if (!accepts_[index].live) {
    if (accepts_[index].ending) {
      op.result = -ECANCELED;
      return true;
    }
    arm_accept(index);
  }
  op.slot = kParked;
  socket.reader = &op;
  arm_deadline(op);
  return false;
}

uint32_t UringReactor::new_accept(Socket& socket) {
  auto gone = std::find_if(accepts_.begin(), accepts_.end(),
                           [](const StandingAccept& a) { return a.socket == nullptr && !a.live; });
  if (gone == accepts_.end()) gone = accepts_.emplace(accepts_.end());
  *gone = StandingAccept{};
  gone->socket = &socket;
  return static_cast<uint32_t>(gone - accepts_.begin());
}

void UringReactor::arm_accept(uint32_t index) {
  io_uring_sqe* sqe = next_sqe();
  io_uring_prep_multishot_accept(sqe, accepts_[index].socket->fd(), nullptr, nullptr,
                                 SOCK_NONBLOCK | SOCK_CLOEXEC);
  io_uring_sqe_set_data64(sqe, kAcceptTag | index);
  accepts_[index].live = true;
  accepts_[index].stopping = false;
}

void UringReactor::complete_accept(const io_uring_cqe& cqe) {
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
    const bool taken = take_accepted(standing, *op);
    const bool ended = !taken && !standing.live && standing.ending;
    if (ended) op->result = -ECANCELED;
    if (taken || ended) {
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

void UringReactor::stop_accepting(Socket& socket) {
  if (!buffers_) return cancel(socket);  // one-shot accepts (no rings): nothing is held here
  if ((socket.standing & kAcceptEntry) == 0) {
    if (socket.standing != 0) return cancel(socket);  // not a listener
    socket.standing = new_accept(socket) | kAcceptEntry;
  }
  const uint32_t index = socket.standing & ~kAcceptEntry;
  StandingAccept& standing = accepts_[index];
  standing.ending = true;
  if (standing.live) {
    // Its last completion (no IORING_CQE_F_MORE) ends the parked accept, after any connection
    // the kernel handed over before the cancel.
    cancel_request(kAcceptTag | index);
    io_uring_submit(&ring_);
    return;
  }
  IoOp* op = socket.reader;
  if (op != nullptr && op->slot == kParked && standing.accepted.empty()) {
    socket.reader = nullptr;
    timers_.cancel(op->timer);
    op->result = -ECANCELED;
    enqueue(*op);
  }
}

void UringReactor::drop_accept(Socket& socket) {
  const uint32_t index = std::exchange(socket.standing, 0) & ~kAcceptEntry;
  StandingAccept& standing = accepts_[index];
  for (int fd : standing.accepted) ::close(fd);
  standing.accepted.clear();
  standing.socket = nullptr;
  if (!standing.live) return;
  cancel_request(kAcceptTag | index);
  io_uring_submit(&ring_);
}

void UringReactor::count_shortage() {
  if (shortages_ == nullptr) return;
  shortages_->store(shortages_->load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
}

}  // namespace usher::net
