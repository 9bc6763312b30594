#include "proxy/l7/head_writer.h"

#include "codec/http1/head_parser.h"
#include "proxy/l7/head_buffer.h"

namespace usher::proxy::l7 {

namespace {

using http1::Header;
using http1::HeaderId;

// Field lines and framing on top of HeadBuffer.
class Writer : public HeadBuffer {
 public:
  using HeadBuffer::HeadBuffer;
  void field(const Header& h) { *this << h.name << ": " << h.value << "\r\n"; }
};

// Field values arrive without surrounding whitespace: the parser trims them.

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

// Removed by the edits: named by `remove` or replaced by `set`.
bool edited_away(const Header& h, const config::HeaderPolicy* edits) {
  if (!edits) return false;
  for (const std::string& name : edits->remove) {
    if (http1::iequals(h.name, name)) return true;
  }
  for (const config::HeaderEdit& edit : edits->set) {
    if (http1::iequals(h.name, edit.name)) return true;
  }
  return false;
}

void write_template(Writer& w, const config::HeaderTemplate& value, const TemplateValues& values) {
  using Variable = config::HeaderTemplate::Variable;
  for (const auto& part : value.parts) {
    switch (part.variable) {
      case Variable::kNone:
        w << part.literal;
        break;
      case Variable::kClientIp:
        w << values.client_ip;
        break;
      case Variable::kRequestId:
        w << values.request_id;
        break;
      case Variable::kBackend:
        w << values.backend;
        break;
      case Variable::kTlsVersion:
        w << values.tls.version;
        break;
      case Variable::kTlsCipher:
        w << values.tls.cipher;
        break;
      case Variable::kSni:
        w << values.tls.sni;
        break;
      case Variable::kTlsClientSubject:
        w << values.tls.client_subject;
        break;
      case Variable::kGeoCountry:
        w << values.geo_country;
        break;
    }
  }
}

void write_added(Writer& w, const config::HeaderPolicy* edits, const TemplateValues& values) {
  if (!edits) return;
  for (const auto* list : {&edits->set, &edits->add}) {
    for (const config::HeaderEdit& edit : *list) {
      w << edit.name << ": ";
      write_template(w, edit.value, values);
      w << "\r\n";
    }
  }
}

// A Cookie field without the sticky cookie (insert mode) or with its "id~" removed (prefix
// mode); nothing at all when no other cookie remains.
void write_cookie(Writer& w, const Header& h, const StickyCookie& sticky) {
  bool first = true;
  for (std::string_view list = h.value; !list.empty();) {
    size_t end = list.find(';');
    std::string_view pair = http1::trim_ows(list.substr(0, end));
    list = end == std::string_view::npos ? std::string_view() : list.substr(end + 1);
    size_t eq = pair.find('=');
    if (pair.empty()) continue;
    if (pair.substr(0, eq) == sticky.name) {
      if (!sticky.prefix_mode || eq == std::string_view::npos) continue;
      std::string_view value = pair.substr(eq + 1);
      size_t tilde = value.find('~');
      if (tilde != std::string_view::npos) value.remove_prefix(tilde + 1);
      w << (first ? "Cookie: " : "; ") << sticky.name << "=" << value;
    } else {
      w << (first ? "Cookie: " : "; ") << pair;
    }
    first = false;
  }
  if (!first) w << "\r\n";
}

// Forwarded's node syntax quotes IPv6 addresses in brackets (RFC 7239 §6).
void write_forwarded_for(Writer& w, std::string_view ip) {
  if (ip.find(':') != std::string_view::npos) {
    w << "for=\"[" << ip << "]\"";
  } else {
    w << "for=" << ip;
  }
}

struct ForwardingFields {
  const Header* proto = nullptr;
  const Header* host = nullptr;
  const Header* port = nullptr;
  const Header* request_host = nullptr;
};

void write_forwarding(Writer& w, const http1::RequestHead& head, const RequestRewrite& rewrite,
                      const ForwardingFields& kept) {
  w << "X-Forwarded-For: ";
  if (rewrite.trusted_peer) {
    for (const Header& h : head.headers) {
      if (h.id == HeaderId::kXForwardedFor && !h.value.empty()) w << h.value << ", ";
    }
  }
  w << rewrite.peer_ip << "\r\n";
  const std::string_view scheme = rewrite.https ? "https" : "http";
  w << "X-Forwarded-Proto: " << (kept.proto ? kept.proto->value : scheme) << "\r\n";
  if (kept.host) {
    w << "X-Forwarded-Host: " << kept.host->value << "\r\n";
  } else if (kept.request_host) {
    w << "X-Forwarded-Host: " << kept.request_host->value << "\r\n";
  }
  w << "X-Forwarded-Port: " << (kept.port ? kept.port->value : rewrite.port) << "\r\n";
  if (rewrite.forwarded) {
    w << "Forwarded: ";
    if (rewrite.trusted_peer) {
      for (const Header& h : head.headers) {
        if (h.id == HeaderId::kForwarded && !h.value.empty()) w << h.value << ", ";
      }
    }
    write_forwarded_for(w, rewrite.peer_ip);
    if (kept.request_host) w << ";host=\"" << kept.request_host->value << "\"";
    w << ";proto=" << scheme << "\r\n";
  }
  if (!rewrite.request_id.empty()) w << "X-Request-Id: " << rewrite.request_id << "\r\n";
}

// Whether the request field is dropped here because usher writes its own version.
bool replaced_by_usher(const Header& h, const RequestRewrite& rewrite, ForwardingFields& kept) {
  switch (h.id) {
    case HeaderId::kContentLength:
    case HeaderId::kXForwardedFor:
      return true;
    case HeaderId::kXForwardedProto:
      if (rewrite.trusted_peer && !kept.proto) kept.proto = &h;
      return true;
    case HeaderId::kXForwardedHost:
      if (rewrite.trusted_peer && !kept.host) kept.host = &h;
      return true;
    case HeaderId::kXForwardedPort:
      if (rewrite.trusted_peer && !kept.port) kept.port = &h;
      return true;
    case HeaderId::kForwarded:
      return rewrite.forwarded || !rewrite.trusted_peer;
    case HeaderId::kXRequestId:
      return !rewrite.request_id.empty();
    case HeaderId::kExpect:
      return rewrite.strip_expect;
    case HeaderId::kTraceparent:
    case HeaderId::kTracestate:
      return !rewrite.traceparent.empty();
    case HeaderId::kHost:
      kept.request_host = &h;
      return false;
    default:
      return false;
  }
}

}  // namespace

size_t write_request_head(const http1::RequestHead& head, const RequestRewrite& rewrite, char* out,
                          size_t capacity) {
  Writer w(out, capacity);
  w << head.method_text << " " << rewrite.new_prefix << head.target.substr(rewrite.strip)
    << " HTTP/1.1\r\n";
  if (!rewrite.traceparent.empty()) {
    w << "traceparent: " << rewrite.traceparent << "\r\n";
    if (!rewrite.tracestate.empty()) w << "tracestate: " << rewrite.tracestate << "\r\n";
  }
  ForwardingFields kept;
  for (const Header& h : head.headers) {
    if (hop_by_hop(h) || replaced_by_usher(h, rewrite, kept) || edited_away(h, rewrite.edits))
      continue;
    if (h.id == HeaderId::kCookie && !rewrite.sticky.name.empty()) {
      write_cookie(w, h, rewrite.sticky);
      continue;
    }
    w.field(h);
  }
  write_framing(w, head.framing);
  if (head.upgrade) w << "Connection: upgrade\r\nUpgrade: " << head.upgrade_protocol << "\r\n";
  write_forwarding(w, head, rewrite, kept);
  write_added(w, rewrite.edits, rewrite.values);
  w << "Via: 1.1 usher\r\n\r\n";
  return w.finish();
}

namespace {

bool is_sticky_set_cookie(const Header& h, const StickyCookie& sticky) {
  if (h.id != HeaderId::kSetCookie || sticky.name.empty()) return false;
  return h.value.starts_with(sticky.name) && h.value.substr(sticky.name.size()).starts_with('=');
}

}  // namespace

size_t write_response_head(const http1::ResponseHead& head, const ResponseRewrite& rewrite,
                           char* out, size_t capacity) {
  Writer w(out, capacity);
  w << "HTTP/1.1 " << static_cast<uint64_t>(head.status) << " " << head.reason << "\r\n";
  // A bodiless response (HEAD, 204, 304) keeps its Content-Length: it describes the resource,
  // not this message's framing.
  bool reframed = head.framing.kind != http1::Framing::Kind::kNone;
  const bool final = !rewrite.interim;
  for (const Header& h : head.headers) {
    if (hop_by_hop(h) && !(head.status == 101 && h.id == HeaderId::kUpgrade)) continue;
    if (reframed && h.id == HeaderId::kContentLength) continue;
    if (final && !rewrite.request_id.empty() && h.id == HeaderId::kXRequestId) continue;
    if (final && edited_away(h, rewrite.edits)) continue;
    if (final && is_sticky_set_cookie(h, rewrite.sticky_prefix)) {
      w << "Set-Cookie: " << rewrite.sticky_prefix.name << "=" << rewrite.backend_id << "~"
        << h.value.substr(rewrite.sticky_prefix.name.size() + 1) << "\r\n";
      continue;
    }
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
  if (final) {
    w << rewrite.set_cookie;
    w << rewrite.extra_fields;
    if (!rewrite.request_id.empty()) w << "X-Request-Id: " << rewrite.request_id << "\r\n";
    write_added(w, rewrite.edits, rewrite.values);
  }
  w << "Via: 1.1 usher\r\n\r\n";
  return w.finish();
}

}  // namespace usher::proxy::l7
