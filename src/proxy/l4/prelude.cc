#include "proxy/l4/prelude.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "codec/l4/client_hello.h"
#include "codec/l4/proxy_protocol.h"
#include "net/relay.h"

namespace usher::proxy::l4 {

namespace {

enum class Step : uint8_t { kDone, kMore, kRefuse };

Step parse_header(const PreludeWants& wants, Prelude& out) {
  usher::l4::ProxyVersions versions;
  versions.v1 = wants.v1;
  versions.v2 = wants.v2;
  const usher::l4::ProxyParse parsed = usher::l4::parse_proxy_header(out.early, versions);
  if (parsed.status == usher::l4::ProxyStatus::kNeedMore) return Step::kMore;
  if (parsed.status != usher::l4::ProxyStatus::kDone) return Step::kRefuse;
  const usher::l4::ProxyHeader& header = parsed.header;
  out.proxy_header_read = true;
  out.alpn = header.alpn;
  out.authority = header.authority;
  if (!header.local) {
    out.source = header.source;
    out.destination = header.destination;
  }
  out.early.erase(0, header.length);
  return Step::kDone;
}

Step peek_name(Prelude& out) {
  const usher::l4::HelloPeek peek = usher::l4::peek_client_hello(out.early);
  switch (peek.status) {
    case usher::l4::HelloStatus::kNeedMore:
      return Step::kMore;
    case usher::l4::HelloStatus::kDone:
      out.sni = peek.server_name;
      if (out.authority.empty()) out.authority = out.sni;
      return Step::kDone;
    case usher::l4::HelloStatus::kNotTls:
      return Step::kDone;  // no name: the listener's route without one takes it
    case usher::l4::HelloStatus::kError:
      break;
  }
  return Step::kRefuse;
}

}  // namespace

net::Task<bool> read_prelude(net::Socket& client, const PreludeWants& wants, uint64_t deadline_ms,
                             Prelude& out) {
  net::Pipe pipe;
  if (!pipe.ok()) co_return false;
  bool header_pending = wants.proxy_header;
  while (true) {
    Step step = Step::kDone;
    if (header_pending) {
      step = parse_header(wants, out);
      header_pending = step != Step::kDone;
    }
    if (step == Step::kDone && wants.server_name) step = peek_name(out);
    if (step != Step::kMore) co_return step == Step::kDone;
    if (out.early.size() >= kMaxPreludeBytes) co_return false;
    const size_t room = std::min(kMaxPreludeBytes - out.early.size(), pipe.capacity());
    const long n = co_await client.splice_in(pipe.write_fd(), room, deadline_ms);
    if (n <= 0 || !take_from_pipe(pipe, static_cast<size_t>(n), out.early)) co_return false;
  }
}

bool take_from_pipe(const net::Pipe& pipe, size_t length, std::string& out) {
  const size_t start = out.size();
  out.resize(start + length);
  size_t have = 0;
  while (have < length) {
    const ssize_t n = ::read(pipe.read_fd(), out.data() + start + have, length - have);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    have += static_cast<size_t>(n);
  }
  return true;
}

ProxySignature proxy_signature(std::string_view first_bytes) {
  static constexpr std::string_view kV1 = "PROXY ";
  static constexpr std::string_view kV2("\r\n\r\n\0\r\nQUIT\n", 12);
  bool maybe = false;
  for (std::string_view signature : {kV1, kV2}) {
    const size_t n = std::min(first_bytes.size(), signature.size());
    if (first_bytes.substr(0, n) != signature.substr(0, n)) continue;
    if (n == signature.size()) return ProxySignature::kYes;
    maybe = true;
  }
  return maybe ? ProxySignature::kMaybe : ProxySignature::kNo;
}

}  // namespace usher::proxy::l4
