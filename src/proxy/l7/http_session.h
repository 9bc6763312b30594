#pragma once
// One client connection speaking HTTP/1.x: reads requests, forwards each to a backend of the
// pool its route names, relays the response, keeps both sides alive when the protocol allows.
#include "net/task.h"

namespace usher::proxy {
class Worker;
struct Endpoint;
}  // namespace usher::proxy

namespace usher::proxy::l7 {

// Worker thread only. Owns fd from here on. The listener's protocol handler for `http`.
net::Task<void> serve_http(Worker& worker, int fd, Endpoint& endpoint);

}  // namespace usher::proxy::l7
