#pragma once
// A PROXY protocol header read off the start of a connection whose bytes the protocol handler
// then reads itself (HTTP, TLS): the header's bytes are looked at with MSG_PEEK until it is
// whole and then taken with one recv of exactly its length, so nothing after it is consumed.
// Worker thread only.
#include <optional>

#include "codec/l4/proxy_protocol.h"
#include "config/config.h"
#include "net/socket.h"
#include "net/task.h"

namespace usher::proxy {

// Whether the listener takes a PROXY header from `peer` (it is in `proxy_protocol.from`).
bool sends_proxy_header(const config::Listener& listener, const IpBytes& peer);

// The header, or nullopt when the peer sent something else, closed, or took past `deadline_ms`.
net::Task<std::optional<usher::l4::ProxyHeader>> read_proxy_header(
    net::Socket& socket, const config::ProxyProtocolAccept& accept, uint64_t deadline_ms);

}  // namespace usher::proxy
