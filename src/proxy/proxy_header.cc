#include "proxy/proxy_header.h"

#include <sys/socket.h>

#include <array>
#include <cerrno>

namespace usher::proxy {

namespace {

// The longest header there can be: v2's 16 fixed bytes and its largest accepted block.
constexpr size_t kMaxHeader = 16 + usher::l4::kProxyV2MaxBlock;

}  // namespace

bool sends_proxy_header(const config::Listener& listener, const IpBytes& peer) {
  if (!listener.proxy_protocol) return false;
  for (const IpRange& range : listener.proxy_protocol->from) {
    if (range.contains(peer)) return true;
  }
  return false;
}

net::Task<std::optional<usher::l4::ProxyHeader>> read_proxy_header(
    net::Socket& socket, const config::ProxyProtocolAccept& accept, uint64_t deadline_ms) {
  const usher::l4::ProxyVersions versions{accept.v1, accept.v2};
  std::array<char, kMaxHeader> bytes;
  while (true) {
    if (co_await socket.wait_readable(deadline_ms) < 0) co_return std::nullopt;
    const ssize_t seen = ::recv(socket.fd(), bytes.data(), bytes.size(), MSG_PEEK | MSG_DONTWAIT);
    if (seen < 0 && (errno == EAGAIN || errno == EINTR)) continue;
    if (seen <= 0) co_return std::nullopt;
    const usher::l4::ProxyParse parsed =
        usher::l4::parse_proxy_header({bytes.data(), static_cast<size_t>(seen)}, versions);
    if (parsed.status == usher::l4::ProxyStatus::kError) co_return std::nullopt;
    if (parsed.status == usher::l4::ProxyStatus::kDone) {
      // The bytes are there (just peeked): this takes the header and nothing after it.
      const size_t length = parsed.header.length;
      if (::recv(socket.fd(), bytes.data(), length, MSG_DONTWAIT) != static_cast<ssize_t>(length)) {
        co_return std::nullopt;
      }
      co_return parsed.header;
    }
    // Part of a header: the peeked bytes stay readable, so wait a little for the rest rather
    // than be woken for them again at once.
    net::Reactor& reactor = socket.reactor();
    co_await net::sleep_until(reactor, reactor.now_ms() + 1);
  }
}

}  // namespace usher::proxy
