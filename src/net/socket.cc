#include "net/socket.h"

#include <fcntl.h>
#include <netinet/tcp.h>
#include <unistd.h>

#include <cerrno>

namespace usher::net {

Socket::Socket(Reactor& reactor, int fd) : reactor_(reactor), fd_(fd) {
  if (fd_ >= 0) reactor_.attach(*this);
}

void Socket::close() {
  if (fd_ < 0) return;
  reactor_.detach(*this);
  ::close(fd_);
  fd_ = -1;
}

int Socket::receive_batch(mmsghdr* messages, unsigned count) {
  const int n = ::recvmmsg(fd_, messages, count, MSG_DONTWAIT, nullptr);
  // epoll is edge-triggered: once the socket is empty, only the next arrival says it is not.
  if (n < static_cast<int>(count)) read_ready = false;
  if (n >= 0) return n;
  return errno == EWOULDBLOCK ? -EAGAIN : -errno;
}

int Socket::open_tcp(const Address& address) {
  int fd = ::socket(address.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

OpAwaitable Socket::make(OpKind kind, char* buffer, size_t length, uint64_t deadline_ms) {
  IoOp op(kind);
  op.socket = this;
  op.buffer = buffer;
  op.length = length;
  op.deadline_ms = deadline_ms;
  return OpAwaitable(reactor_, op);
}

long splice_once(const IoOp& op) {
  const int socket = op.socket->fd();
  const bool in = op.kind == OpKind::kSpliceIn;
  ssize_t n = ::splice(in ? socket : op.pipe_fd, nullptr, in ? op.pipe_fd : socket, nullptr,
                       op.length, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
  if (n >= 0) return n;
  return errno == EWOULDBLOCK ? -EAGAIN : -errno;
}

OpAwaitable Socket::splice_in(int pipe_fd, size_t length, uint64_t deadline_ms) {
  IoOp op(OpKind::kSpliceIn);
  op.socket = this;
  op.pipe_fd = pipe_fd;
  op.length = length;
  op.deadline_ms = deadline_ms;
  return OpAwaitable(reactor_, op);
}

OpAwaitable Socket::splice_out(int pipe_fd, size_t length, uint64_t deadline_ms) {
  IoOp op(OpKind::kSpliceOut);
  op.socket = this;
  op.pipe_fd = pipe_fd;
  op.length = length;
  op.deadline_ms = deadline_ms;
  return OpAwaitable(reactor_, op);
}

OpAwaitable Socket::writev(const iovec* iov, int count, uint64_t deadline_ms) {
  IoOp op(OpKind::kWritev);
  op.socket = this;
  op.iov = iov;
  op.iov_count = count;
  op.deadline_ms = deadline_ms;
  return OpAwaitable(reactor_, op);
}

OpAwaitable Socket::connect(const Address& to, uint64_t deadline_ms) {
  IoOp op(OpKind::kConnect);
  op.socket = this;
  op.deadline_ms = deadline_ms;
  op.result = ::connect(fd_, to.sockaddr_ptr(), to.length()) == 0 ? 0 : -errno;
  return OpAwaitable(reactor_, op);
}

}  // namespace usher::net
