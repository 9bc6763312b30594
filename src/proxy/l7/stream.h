#pragma once
// Moving bytes between sockets: whole writes and the bidirectional tunnel of an upgraded
// connection. Worker thread only.
#include <cstddef>
#include <string_view>
#include <utility>

#include "net/buffer_pool.h"
#include "net/socket.h"
#include "net/task.h"

namespace usher::proxy::l7 {

// Writes a then b completely; false if the peer failed or the deadline passed.
net::Task<bool> write_all(net::Socket& socket, std::string_view a, std::string_view b,
                          uint64_t deadline_ms);

// Writes a then b completely while the peer keeps taking bytes: each write may wait idle_ms.
// Returns 0, or the failed write's result (-ETIMEDOUT: the peer took nothing for idle_ms).
net::Task<long> write_all_idle(net::Socket& socket, std::string_view a, std::string_view b,
                               uint64_t idle_ms);

// What a write of `written` bytes of a then b left of them.
std::pair<std::string_view, std::string_view> unwritten(std::string_view a, std::string_view b,
                                                        size_t written);

// Relays both directions until each has ended; idle_ms bounds inactivity per read.
net::Task<void> tunnel(net::Socket& a, net::Socket& b, net::BufferPool& buffers, uint64_t idle_ms);

// Closes with RST so the peer cannot mistake a cut-off body for a complete one.
void abort_connection(net::Socket& socket);

}  // namespace usher::proxy::l7
