#include "proxy/l7/head_writer.h"

#include <charconv>
#include <cstring>

namespace usher::proxy::l7 {

namespace {

using http1::Header;
using http1::HeaderId;

class Writer {
 public:
  Writer(char* out, size_t capacity) : out_(out), capacity_(capacity) {}

  Writer& operator<<(std::string_view s) {
    if (overflow_ || capacity_ - size_ < s.size()) {
      overflow_ = true;
      return *this;
    }
    std::memcpy(out_ + size_, s.data(), s.size());
    size_ += s.size();
    return *this;
  }
  Writer& operator<<(uint64_t n) {
    char digits[24];
    auto [end, ec] = std::to_chars(digits, digits + sizeof digits, n);
    return *this << std::string_view(digits, static_cast<size_t>(end - digits));
  }
  void field(const Header& h) { *this << h.name << ": " << h.value << "\r\n"; }
  size_t finish() { return overflow_ ? 0 : size_; }

 private:
  char* out_;
  size_t capacity_;
  size_t size_ = 0;
  bool overflow_ = false;
};

// Fields that describe one connection only and never travel past a proxy.
bool hop_by_hop(const Header& h) {
  switch (h.id) {
    case HeaderId::kConnection:
    case HeaderId::kKeepAlive:
    case HeaderId::kProxyConnection:
    case HeaderId::kTe:
    case HeaderId::kTransferEncoding:
    case HeaderId::kUpgrade:
      return true;
    default:
      return h.connection_listed;
  }
}

void write_framing(Writer& w, const http1::Framing& framing) {
  if (framing.kind == http1::Framing::Kind::kLength) {
    w << "Content-Length: " << framing.length << "\r\n";
  } else if (framing.kind == http1::Framing::Kind::kChunked) {
    w << "Transfer-Encoding: " << framing.transfer_codings << "\r\n";
  }
}

}  // namespace

size_t write_request_head(const http1::RequestHead& head, const RequestRewrite& rewrite, char* out,
                          size_t capacity) {
  Writer w(out, capacity);
  w << head.method_text << " " << head.target << " HTTP/1.1\r\n";
  for (const Header& h : head.headers) {
    if (hop_by_hop(h) || h.id == HeaderId::kContentLength || h.id == HeaderId::kXForwardedProto) {
      continue;
    }
    if (h.id == HeaderId::kExpect && rewrite.strip_expect) continue;
    w.field(h);
  }
  write_framing(w, head.framing);
  if (head.upgrade) w << "Connection: upgrade\r\nUpgrade: " << head.upgrade_protocol << "\r\n";
  w << "X-Forwarded-For: " << rewrite.client_ip << "\r\n";
  w << "X-Forwarded-Proto: http\r\nVia: 1.1 usher\r\n\r\n";
  return w.finish();
}

size_t write_response_head(const http1::ResponseHead& head, const ResponseRewrite& rewrite,
                           char* out, size_t capacity) {
  Writer w(out, capacity);
  w << "HTTP/1.1 " << static_cast<uint64_t>(head.status) << " " << head.reason << "\r\n";
  // A bodiless response (HEAD, 204, 304) keeps its Content-Length: it describes the resource,
  // not this message's framing.
  bool reframed = head.framing.kind != http1::Framing::Kind::kNone;
  for (const Header& h : head.headers) {
    if (hop_by_hop(h) && !(head.status == 101 && h.id == HeaderId::kUpgrade)) continue;
    if (reframed && h.id == HeaderId::kContentLength) continue;
    w.field(h);
  }
  if (!rewrite.dechunk) write_framing(w, head.framing);
  if (head.status == 101) {
    w << "Connection: upgrade\r\n";
  } else if (!rewrite.client_keep_alive) {
    w << "Connection: close\r\n";
  } else if (rewrite.client_http10) {
    w << "Connection: keep-alive\r\n";
  }
  w << "Via: 1.1 usher\r\n\r\n";
  return w.finish();
}

}  // namespace usher::proxy::l7
