#pragma once
// Both directions of a layer-4 connection: client to backend and back, until each direction has
// ended. A clean end (EOF) of one direction is passed on as a half-close of the other socket and
// the other direction goes on; a failure of either ends both. The connection is idle only when
// neither direction moved a byte for idle_ms (HAProxy's `timeout tunnel`), so a long download
// with a silent client is not cut.
//
// Two ways to move the bytes (docs/benchmarks.md has the measurements behind the choice):
// - copy: the reactor's reads and writes through one of the worker's buffers per direction. On
//   io_uring a read is served by the socket's standing receive and a write is one submission,
//   so a small message costs no system call of its own: the cheapest for request/response
//   traffic.
// - splice: each direction through a kernel pipe with splice(2), the bytes never in userspace:
//   the cheapest per byte for bulk streams, but two or three system calls per chunk.
// - auto: copy, until a direction's reads bring 8 KiB or more several times in a row (a stream):
//   that direction ends the reactor's receiving on its socket, passes on what was received,
//   and splices from then on. Each direction decides for itself (a download splices, its
//   requests keep copying).
// In splice mode neither socket may have been read through the reactor before (net/relay.h);
// auto ends that reading first (Socket::end_receive).
//
// With `refuse_proxy_header`, the client's first bytes are looked at before they go on: a PROXY
// protocol header from a client the listener does not trust ends the connection (-EPROTO).
#include <cstdint>

#include "config/config.h"
#include "net/buffer_pool.h"
#include "net/socket.h"
#include "net/task.h"

namespace usher::proxy::l4 {

struct RelayTotals {
  uint64_t to_backend = 0;  // bytes delivered each way
  uint64_t to_client = 0;
  bool idle = false;           // ended by idle_ms of silence both ways
  long error = 0;              // the first failure (-errno), 0 when both directions ended cleanly
  bool client_failed = false;  // the failure was on the client's socket
  int spliced = 0;             // directions that moved from copying to splice(2) (relay: auto)
};

struct RelayOptions {
  config::Relay mode = config::Relay::kAuto;
  uint64_t idle_ms = 0;
  bool refuse_proxy_header = false;
};

net::Task<RelayTotals> relay_pair(net::Socket& client, net::Socket& backend,
                                  net::BufferPool& buffers, RelayOptions options);

}  // namespace usher::proxy::l4
