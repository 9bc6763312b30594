#include "net/aio_batch.h"

#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdint>

#include "net/reactor.h"
#include "net/socket.h"

namespace usher::net {

namespace {

long io_setup(unsigned events, aio_context_t* context) {
  return ::syscall(SYS_io_setup, events, context);
}
long io_destroy(aio_context_t context) {
  return ::syscall(SYS_io_destroy, context);
}
long io_submit(aio_context_t context, long count, iocb** blocks) {
  return ::syscall(SYS_io_submit, context, count, blocks);
}
long io_getevents(aio_context_t context, long min, long max, io_event* events) {
  return ::syscall(SYS_io_getevents, context, min, max, events, nullptr);
}

void prepare(iocb& block, const IoOp& op, uint64_t index) {
  block = iocb{};
  block.aio_data = index;
  block.aio_fildes = static_cast<uint32_t>(op.socket->fd());
  if (op.kind == OpKind::kWritev) {
    block.aio_lio_opcode = IOCB_CMD_PWRITEV;
    block.aio_buf = reinterpret_cast<uintptr_t>(op.iov);
    block.aio_nbytes = static_cast<uint64_t>(op.iov_count);
  } else {
    block.aio_lio_opcode = IOCB_CMD_PWRITE;
    block.aio_buf = reinterpret_cast<uintptr_t>(op.buffer);
    block.aio_nbytes = op.length;
  }
}

}  // namespace

std::unique_ptr<AioBatch> AioBatch::create() {
  aio_context_t context = 0;
  if (io_setup(kMaxOps, &context) < 0) return nullptr;
  // An AIO write cannot say MSG_NOSIGNAL: a write to a reset connection must fail with EPIPE
  // rather than kill the process.
  struct sigaction current {};
  if (::sigaction(SIGPIPE, nullptr, &current) == 0 && current.sa_handler == SIG_DFL) {
    ::signal(SIGPIPE, SIG_IGN);
  }
  return std::unique_ptr<AioBatch>(new AioBatch(context));
}

AioBatch::~AioBatch() {
  io_destroy(context_);
}

void AioBatch::write(IoOp* const* ops, size_t count, long* results) {
  for (size_t i = 0; i < count; ++i) prepare(blocks_[i], *ops[i], i);
  submit(count, results);
}

void AioBatch::send(Datagram* const* datagrams, size_t count, long* results) {
  for (size_t i = 0; i < count; ++i) {
    const Datagram& d = *datagrams[i];
    blocks_[i] = iocb{};
    blocks_[i].aio_data = i;
    blocks_[i].aio_fildes = static_cast<uint32_t>(d.fd);
    blocks_[i].aio_lio_opcode = IOCB_CMD_PWRITEV;
    blocks_[i].aio_buf = reinterpret_cast<uintptr_t>(d.message.msg_iov);
    blocks_[i].aio_nbytes = d.message.msg_iovlen;
  }
  submit(count, results);
}

void AioBatch::submit(size_t count, long* results) {
  for (size_t i = 0; i < count; ++i) {
    results[i] = -EIO;  // stays only if the kernel loses an event, which fails that connection
    queue_[i] = &blocks_[i];
  }
  size_t done = 0;
  while (done < count) {
    long submitted = io_submit(context_, static_cast<long>(count - done), queue_ + done);
    if (submitted <= 0) {
      results[done++] = kNotRun;
      continue;
    }
    // A socket write completes before io_submit returns, so these events are already there.
    long reaped = 0;
    while (reaped < submitted) {
      long n = io_getevents(context_, submitted - reaped, submitted - reaped, events_);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return;
      for (long e = 0; e < n; ++e) results[events_[e].data] = static_cast<long>(events_[e].res);
      reaped += n;
    }
    done += static_cast<size_t>(submitted);
  }
}

}  // namespace usher::net
