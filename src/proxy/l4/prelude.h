#pragma once
// What a tcp listener reads from a client before relaying: a PROXY protocol header from a
// trusted balancer (required from those: HAProxy's accept-proxy), and the TLS ClientHello's
// server name when the listener routes by it. Bytes are taken through a pipe (splice), never
// through the reactor's receive, so that the relay can splice the rest (net/relay.h says why).
// Everything read past the header stays in `early`, for the backend.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "base/address.h"
#include "codec/l4/client_hello.h"
#include "codec/l4/proxy_protocol.h"
#include "net/relay.h"
#include "net/socket.h"
#include "net/task.h"

namespace usher::proxy::l4 {

// The most a prelude may take: a v2 header with its TLVs and the longest ClientHello.
inline constexpr size_t kMaxPreludeBytes =
    16 + usher::l4::kProxyV2MaxBlock + usher::l4::kMaxClientHelloPeek;

struct PreludeWants {
  bool proxy_header = false;  // the peer is a trusted balancer: its header comes first
  bool v1 = true;             // the versions accepted from it
  bool v2 = true;
  bool server_name = false;  // the listener routes by the ClientHello's name
};

struct Prelude {
  bool proxy_header_read = false;
  std::optional<Address> source;  // from the header; none for LOCAL (a balancer's own check)
  std::optional<Address> destination;
  std::string sni;  // lower case; empty without TLS or without the extension
  // For the v2 header usher writes: the balancer's ALPN and authority TLVs, else the SNI.
  std::string alpn;
  std::string authority;
  std::string early;  // read and not consumed: sent to the backend first
};

// False when the client sent something else than `wants` allows, closed, or took past
// `deadline_ms`.
net::Task<bool> read_prelude(net::Socket& client, const PreludeWants& wants, uint64_t deadline_ms,
                             Prelude& out);

// Appends `length` bytes that a splice put in the pipe to `out`; false if they are not there.
bool take_from_pipe(const net::Pipe& pipe, size_t length, std::string& out);

// Whether a connection's first bytes begin a PROXY header (v1 or v2 signature): kMaybe while
// they are too few to tell.
enum class ProxySignature : uint8_t { kNo, kYes, kMaybe };
ProxySignature proxy_signature(std::string_view first_bytes);
inline constexpr size_t kProxySignatureBytes = 12;  // v2's; enough to tell either way

}  // namespace usher::proxy::l4
