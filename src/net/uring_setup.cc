#include "net/uring_reactor.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <string>
#include <utility>

namespace usher::net {

namespace {

constexpr unsigned kQueueDepth = 1024;

// The operations the backend uses; a kernel (or seccomp profile) without one gets epoll.
bool supports_all(io_uring& ring, std::string& missing) {
  io_uring_probe* probe = io_uring_get_probe_ring(&ring);
  if (probe == nullptr) {
    missing = "no opcode probe";
    return false;
  }
  const std::pair<int, const char*> needed[] = {
      {IORING_OP_RECV, "recv"},         {IORING_OP_SEND, "send"},
      {IORING_OP_WRITEV, "writev"},     {IORING_OP_ACCEPT, "accept"},
      {IORING_OP_POLL_ADD, "poll_add"}, {IORING_OP_ASYNC_CANCEL, "async_cancel"},
      {IORING_OP_SENDMSG, "sendmsg"}};
  for (const auto& [opcode, name] : needed) {
    if (!io_uring_opcode_supported(probe, opcode)) missing += std::string(" ") + name;
  }
  io_uring_free_probe(probe);
  return missing.empty();
}

}  // namespace

std::unique_ptr<Reactor> make_uring_reactor(std::string& error) {
  // Best first: one thread submits (6.0+), the ring created disabled so that the worker thread
  // that runs it, not the thread that built it, becomes that submitter; cooperative task work
  // (5.19+). Deferred task work (6.1) is left out on purpose: it cost nothing in CPU here but
  // doubled the p99 at 1000 connections (docs/benchmarks.md).
  const unsigned tiers[] = {
      IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN | IORING_SETUP_R_DISABLED,
      IORING_SETUP_COOP_TASKRUN, 0};
  io_uring ring{};
  io_uring_params params{};
  int rc = -EINVAL;
  for (unsigned flags : tiers) {
    params = {};
    params.flags = IORING_SETUP_CQSIZE | flags;
    params.cq_entries = kQueueDepth * 4;
    rc = io_uring_queue_init_params(kQueueDepth, &ring, &params);
    if (rc != -EINVAL) break;
  }
  if (rc < 0) {
    error = std::string("io_uring_setup: ") + std::strerror(-rc);
    return nullptr;
  }
  std::string missing;
  if (!(params.features & IORING_FEAT_EXT_ARG) || !supports_all(ring, missing)) {
    error = "io_uring lacks" + (missing.empty() ? std::string(" timed waits") : missing);
    io_uring_queue_exit(&ring);
    return nullptr;
  }
  int wake_fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake_fd < 0) {
    error = std::string("eventfd: ") + std::strerror(errno);
    io_uring_queue_exit(&ring);
    return nullptr;
  }
  // Multishot receive came with 6.0, as did the single-issuer flag of the first tier.
  std::unique_ptr<ProvidedBuffers> buffers;
  if (params.flags & IORING_SETUP_SINGLE_ISSUER) {
    buffers = std::make_unique<ProvidedBuffers>();
    std::string why;
    if (!buffers->init(ring, kBufferCount, kBufferSize, why)) buffers.reset();
  }
  return std::make_unique<UringReactor>(
      ring, wake_fd, (params.flags & IORING_SETUP_R_DISABLED) != 0, std::move(buffers));
}

}  // namespace usher::net
