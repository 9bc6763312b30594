#pragma once
// The protocol handler of a `tcp` listener: one client connection relayed to one backend,
// byte for byte, with splice(2) both ways. Before relaying it may read a PROXY protocol header
// from a trusted balancer in front, and the TLS ClientHello's server name when the listener
// routes by it; it may write a PROXY protocol header to the backend.
#include "net/task.h"

namespace usher::proxy {
class Worker;
struct Endpoint;
}  // namespace usher::proxy

namespace usher::proxy::l4 {

net::Task<void> serve_tcp(Worker& worker, int fd, Endpoint& endpoint);

}  // namespace usher::proxy::l4
