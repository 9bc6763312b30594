// Writes are the exception to "at once": they wait until the coroutines of the turn have run and
// then go out together, in one io_submit where the kernel allows Linux AIO (aio_batch.h), back
// to back otherwise. A send wakes its peer, and where peers share a core the woken one may
// preempt the loop as the syscall returns: one return per turn instead of one per send is what
// io_uring gets from its one submit per turn, and it nearly halves the loop's CPU per request.
#include "net/epoll_reactor.h"

#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <utility>

namespace usher::net {

namespace {

// Sends datagrams [0, count), all on one socket, in sendmmsg calls; a failure is that datagram's
// result, and the ones after it go on.
void send_run(Datagram* run, size_t count) {
  constexpr size_t kMax = 64;
  mmsghdr messages[kMax];
  for (size_t from = 0; from < count;) {
    const size_t n = std::min(count - from, kMax);
    for (size_t i = 0; i < n; ++i) messages[i] = {run[from + i].message, 0};
    const int sent =
        ::sendmmsg(run[from].fd, messages, static_cast<unsigned>(n), MSG_DONTWAIT | MSG_NOSIGNAL);
    if (sent <= 0) {
      run[from++].result = sent < 0 ? -errno : -EAGAIN;
      continue;
    }
    for (int i = 0; i < sent; ++i) run[from + i].result = messages[i].msg_len;
    from += static_cast<size_t>(sent);
  }
}

}  // namespace

// Connected datagrams go in one io_submit; those with an address or control data (which a
// write cannot carry), and all without AIO, in sendmmsg runs per socket, which have the
// preemption points the AIO batch avoids.
void EpollReactor::send_datagrams(std::span<Datagram> datagrams) {
  auto by_aio = [this](const Datagram& d) {
    return aio_ && d.message.msg_name == nullptr && d.message.msg_controllen == 0;
  };
  Datagram* connected[AioBatch::kMaxOps];
  long results[AioBatch::kMaxOps];
  size_t queued = 0;
  auto send_queued = [&] {
    aio_->send(connected, queued, results);
    for (size_t i = 0; i < queued; ++i) {
      if (results[i] == AioBatch::kNotRun) {
        send_run(connected[i], 1);
      } else {
        connected[i]->result = results[i];
      }
    }
    queued = 0;
  };
  for (size_t i = 0; i < datagrams.size();) {
    if (by_aio(datagrams[i])) {
      connected[queued++] = &datagrams[i++];
      if (queued == AioBatch::kMaxOps) send_queued();
      continue;
    }
    size_t end = i + 1;
    while (end < datagrams.size() && datagrams[end].fd == datagrams[i].fd &&
           !by_aio(datagrams[end])) {
      ++end;
    }
    send_run(&datagrams[i], end - i);
    i = end;
  }
  if (queued > 0) send_queued();
}

// Resumes what completed, then sends the writes those coroutines made, until neither is left.
void EpollReactor::finish_turn() {
  resume_ready();
  while (!deferred_writes_.empty()) {
    flushing_.swap(deferred_writes_);
    std::erase(flushing_, nullptr);  // their sockets were cancelled or detached meanwhile
    for (IoOp* op : flushing_) {
      op->socket->write_deferred = false;
      op->socket->writer = nullptr;
    }
    if (aio_) {
      send_through_aio();
    } else {
      for (IoOp* op : flushing_) {
        if (start(*op)) enqueue(*op);
      }
    }
    flushing_.clear();
    resume_ready();
  }
}

void EpollReactor::send_through_aio() {
  long results[AioBatch::kMaxOps];
  for (size_t from = 0; from < flushing_.size(); from += AioBatch::kMaxOps) {
    size_t count = std::min(AioBatch::kMaxOps, flushing_.size() - from);
    aio_->write(flushing_.data() + from, count, results);
    for (size_t i = 0; i < count; ++i) {
      IoOp& op = *flushing_[from + i];
      long result = results[i] == AioBatch::kNotRun ? attempt(op) : results[i];
      if (settle(op, result)) enqueue(op);
    }
  }
}

void EpollReactor::forget_deferred_write(Socket& socket) {
  if (!std::exchange(socket.write_deferred, false)) return;
  for (IoOp*& op : deferred_writes_) {
    if (op == socket.writer) op = nullptr;
  }
}

}  // namespace usher::net
