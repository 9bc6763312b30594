#pragma once
// Many socket writes in one system call, for the epoll backend. Every syscall return is a point
// where a peer that a write woke can preempt the loop, and where peers share a core that happens
// on most sends. Linux AIO's io_submit runs a batch of writes in one entry into the kernel (a
// socket write completes inline), like io_uring's one submit per turn; it is an older interface
// that container seccomp profiles allow, so it is there where io_uring is refused.
#include <linux/aio_abi.h>

#include <climits>
#include <cstddef>
#include <memory>

namespace usher::net {

struct IoOp;
struct Datagram;

class AioBatch {
 public:
  static constexpr size_t kMaxOps = 256;
  // The result of an op the kernel refused to queue: run it with a plain syscall instead.
  static constexpr long kNotRun = LONG_MIN;

  // nullptr when the kernel (or a seccomp profile) refuses an AIO context.
  static std::unique_ptr<AioBatch> create();
  AioBatch(const AioBatch&) = delete;
  AioBatch& operator=(const AioBatch&) = delete;
  ~AioBatch();

  // Runs the writes (kWrite, kWritev) of ops[0, count), count <= kMaxOps, on non-blocking
  // sockets; results[i] receives op i's bytes written, -errno, or kNotRun.
  void write(IoOp* const* ops, size_t count, long* results);
  // The same for datagrams on connected sockets (a writev of each one's iovecs sends it whole).
  void send(Datagram* const* datagrams, size_t count, long* results);

 private:
  explicit AioBatch(aio_context_t context) : context_(context) {}
  void submit(size_t count, long* results);

  aio_context_t context_;
  iocb blocks_[kMaxOps]{};
  iocb* queue_[kMaxOps]{};
  io_event events_[kMaxOps]{};
};

}  // namespace usher::net
