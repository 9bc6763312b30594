#pragma once
// One client connection speaking HTTP/1.x: reads requests, forwards each to a backend of the
// pool its route names, relays the response, keeps both sides alive when the protocol allows.
#include "net/task.h"

namespace usher::proxy {
class Worker;
}

namespace usher::proxy::l7 {

// Worker thread only. Owns fd from here on.
net::Task<void> serve_http(Worker& worker, int fd, size_t listener_index);

}  // namespace usher::proxy::l7
