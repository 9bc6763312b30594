#pragma once
// Both directions of a layer-4 connection through kernel pipes (splice(2)): client to backend
// and back, until each direction has ended. A clean end (EOF) of one direction is passed on as
// a half-close of the other socket and the other direction goes on; a failure of either ends
// both. The connection is idle only when neither direction moved a byte for idle_ms (HAProxy's
// `timeout tunnel`), so a long download with a silent client is not cut.
// Neither socket may have been read through the reactor before (see net/relay.h).
//
// With `refuse_proxy_header`, the client's first bytes are looked at before they go on: a PROXY
// protocol header from a client the listener does not trust ends the connection (-EPROTO).
#include <cstdint>

#include "net/socket.h"
#include "net/task.h"

namespace usher::proxy::l4 {

struct SpliceTotals {
  uint64_t to_backend = 0;  // bytes delivered each way
  uint64_t to_client = 0;
  bool idle = false;           // ended by idle_ms of silence both ways
  long error = 0;              // the first failure (-errno), 0 when both directions ended cleanly
  bool client_failed = false;  // the failure was on the client's socket
};

net::Task<SpliceTotals> splice_pair(net::Socket& client, net::Socket& backend, uint64_t idle_ms,
                                    bool refuse_proxy_header);

}  // namespace usher::proxy::l4
