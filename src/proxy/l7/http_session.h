#pragma once
// One client connection speaking HTTP/1.x: reads requests, forwards each to a backend of the
// pool its route names, relays the response, keeps both sides alive when the protocol allows.
#include <cstdint>

#include "net/task.h"

namespace usher::proxy {
class Worker;
struct Endpoint;
}  // namespace usher::proxy

namespace usher::proxy::l7 {

struct Client;
enum class Next : uint8_t;

// Worker thread only. Owns fd from here on. The listener's protocol handler for `http`.
net::Task<void> serve_http(Worker& worker, int fd, Endpoint& endpoint);

// Shared by the HTTP/1 connection loop and HTTP/2 streams, whose request arrives in c.in as an
// HTTP/1.1 head: takes the worker's current generation and the listener's routes as it has
// them (false when a reload removed the listener), then serves one request from its head to its
// end. kKeepAlive only when both the request and the response allow another on the connection.
bool begin_request(Client& c);
net::Task<Next> serve_request(Client& c);

}  // namespace usher::proxy::l7
