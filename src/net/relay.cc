#include "net/relay.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

namespace usher::net {

namespace {

// Larger than the default 64 KiB so a bulk transfer needs fewer splices; Linux lets any user
// grow a pipe up to /proc/sys/fs/pipe-max-size (1 MiB by default).
constexpr int kPipeBytes = 256 * 1024;

uint64_t deadline(Reactor& reactor, uint64_t idle_ms) {
  return idle_ms == 0 ? 0 : reactor.now_ms() + idle_ms;
}

}  // namespace

Pipe::Pipe() {
  int fds[2];
  if (::pipe2(fds, O_NONBLOCK | O_CLOEXEC) < 0) return;
  read_fd_ = fds[0];
  write_fd_ = fds[1];
  int size = ::fcntl(write_fd_, F_SETPIPE_SZ, kPipeBytes);
  if (size < 0) size = ::fcntl(write_fd_, F_GETPIPE_SZ);
  capacity_ = size > 0 ? static_cast<size_t>(size) : 4096;
}

Pipe::~Pipe() {
  if (read_fd_ >= 0) ::close(read_fd_);
  if (write_fd_ >= 0) ::close(write_fd_);
}

Task<RelayResult> splice_relay(Socket& from, Socket& to, uint64_t idle_ms) {
  RelayResult result;
  Pipe pipe;
  if (!pipe.ok()) {
    result.error = -errno;
    co_return result;
  }
  while (true) {
    // The pipe is empty at the top of the loop, so a splice in never waits for pipe room.
    long in = co_await from.splice_in(pipe.write_fd(), pipe.capacity(),
                                      deadline(from.reactor(), idle_ms));
    if (in <= 0) {
      result.clean = in == 0;
      result.error = in;
      co_return result;
    }
    for (auto left = static_cast<size_t>(in); left > 0;) {
      long out = co_await to.splice_out(pipe.read_fd(), left, deadline(to.reactor(), idle_ms));
      if (out <= 0) {
        result.error = out == 0 ? -EPIPE : out;
        co_return result;
      }
      left -= static_cast<size_t>(out);
      result.bytes += static_cast<uint64_t>(out);
    }
  }
}

}  // namespace usher::net
