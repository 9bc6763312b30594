#pragma once
// A `udp` listener on one worker: reads datagrams from its socket, keeps a session per client
// address and port with a connected socket to the backend chosen for it (so replies come back
// to that socket and go out to the client), and ends sessions after `session_idle` of silence.
// Runs until the endpoint's socket is closed (a reload removed the listener, or shutdown).
#include "net/task.h"

namespace usher::proxy {
class Worker;
struct Endpoint;
}  // namespace usher::proxy

namespace usher::proxy::l4 {

net::Task<void> serve_udp(Worker& worker, Endpoint& endpoint);

}  // namespace usher::proxy::l4
