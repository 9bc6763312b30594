#pragma once
// Moving a byte stream from one socket to another through a kernel pipe with splice(2): the
// bytes never enter userspace. The building block of layer-4 proxying and of long transfers.
// Worker thread only; works on both reactor backends.
#include <cstdint>

#include "net/socket.h"
#include "net/task.h"

namespace usher::net {

// A non-blocking pipe; closed with the object.
class Pipe {
 public:
  Pipe();
  Pipe(const Pipe&) = delete;
  Pipe& operator=(const Pipe&) = delete;
  ~Pipe();
  bool ok() const { return read_fd_ >= 0; }
  int read_fd() const { return read_fd_; }
  int write_fd() const { return write_fd_; }
  size_t capacity() const { return capacity_; }

 private:
  int read_fd_ = -1;
  int write_fd_ = -1;
  size_t capacity_ = 0;
};

struct RelayResult {
  uint64_t bytes = 0;
  bool clean = false;  // the source ended with EOF and everything read was delivered
  long error = 0;      // else: -errno of the failed side (-ETIMEDOUT after idle_ms of silence)
};

// Relays `from` to `to` until `from` ends; each wait is bounded by idle_ms (0: none).
// Does not close or shut down either socket: the caller decides what an end means.
// `from` must not have been read with read() or readable() before: on io_uring that starts a
// standing receive, which would take the bytes before splice(2) sees them.
Task<RelayResult> splice_relay(Socket& from, Socket& to, uint64_t idle_ms);

}  // namespace usher::net
