#pragma once
// A non-blocking socket attached to one worker's reactor; its operations are awaitables.
#include <sys/socket.h>

#include <utility>

#include "base/address.h"
#include "net/reactor.h"

namespace usher::net {

class Socket {
 public:
  Socket(Reactor& reactor, int fd);
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;
  ~Socket() { close(); }

  // Creates a non-blocking TCP socket for address's family; fd -1 on failure (errno set).
  static int open_tcp(const Address& address);

  int fd() const { return fd_; }
  bool is_open() const { return fd_ >= 0; }
  Reactor& reactor() const { return reactor_; }
  void close();

  // Each yields bytes moved (0 = peer closed, for reads) or -errno; deadline 0 = none.
  OpAwaitable read(char* buffer, size_t length, uint64_t deadline_ms) {
    return make(OpKind::kRead, buffer, length, deadline_ms);
  }
  OpAwaitable write(const char* buffer, size_t length, uint64_t deadline_ms) {
    return make(OpKind::kWrite, const_cast<char*>(buffer), length, deadline_ms);
  }
  OpAwaitable writev(const iovec* iov, int count, uint64_t deadline_ms);
  OpAwaitable accept(uint64_t deadline_ms) {
    return make(OpKind::kAccept, nullptr, 0, deadline_ms);
  }
  // Up to length bytes from this socket into a pipe, and from a pipe into this socket, without
  // passing through userspace (splice(2)); yields bytes moved, 0 at EOF, or -errno.
  OpAwaitable splice_in(int pipe_fd, size_t length, uint64_t deadline_ms);
  OpAwaitable splice_out(int pipe_fd, size_t length, uint64_t deadline_ms);
  // Once the reactor receives nothing more for this socket on its own (io_uring's standing
  // receive has ended), so that splice_in may take its bytes from then on: yields 1 when the
  // reactor still holds bytes it received (or the end), which try_read then gives, and -EAGAIN
  // after them; 0 when it holds none.
  OpAwaitable end_receive() { return make(OpKind::kEndReceive, nullptr, 0, 0); }
  // Yields 0 once connected, or -errno.
  OpAwaitable connect(const Address& to, uint64_t deadline_ms);
  // Yields 0 when bytes (or EOF) are waiting, without taking a buffer.
  OpAwaitable readable(uint64_t deadline_ms) {
    return make(OpKind::kPollIn, nullptr, 0, deadline_ms);
  }

  // Yields 0 once datagrams (or bytes) wait, receiving none of them, and never before the next
  // loop turn: for a socket its owner reads with its own syscalls (receive_batch), where
  // readable() would start io_uring's standing receive, which takes the datagrams and drops
  // their senders' addresses. A reader that takes one batch per wake so lets the loop's other
  // work run between its batches.
  OpAwaitable wait_readable(uint64_t deadline_ms) {
    return make(OpKind::kWaitIn, nullptr, 0, deadline_ms);
  }
  // recvmmsg(2) without waiting: the datagrams received, or -errno (-EAGAIN when none wait).
  // Fewer than `count` means the socket was emptied: the next wait_readable waits for more.
  int receive_batch(mmsghdr* messages, unsigned count);

  // One immediate recv that never parks: -EAGAIN when nothing is waiting. Lets an idle
  // connection wait with readable() and take a buffer only once bytes are there.
  long try_read(char* buffer, size_t length) { return reactor_.try_read(*this, buffer, length); }

  // Reactor-private state: readiness (epoll), operations in flight (both).
  IoOp* reader = nullptr;
  IoOp* writer = nullptr;
  bool read_ready = true;
  bool write_ready = true;
  bool peer_closed = false;  // EPOLLRDHUP/HUP seen: an idle upstream connection is dead
  bool watching_writable = false;
  bool write_deferred = false;  // epoll: its write waits for the end of the loop turn
  bool accepts_ended = false;   // epoll: stop_accepting() was called
  uint32_t standing = 0;        // io_uring: its multishot receive's entry + 1 (0: none)

 private:
  OpAwaitable make(OpKind kind, char* buffer, size_t length, uint64_t deadline_ms);

  Reactor& reactor_;
  int fd_;
};

}  // namespace usher::net
