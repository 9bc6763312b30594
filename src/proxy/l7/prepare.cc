#include "proxy/l7/prepare.h"

#include "codec/http1/head_parser.h"
#include "proxy/l7/head_writer.h"
#include "proxy/l7/local_response.h"
#include "proxy/l7/request_guards.h"
#include "proxy/l7/request_key.h"
#include "proxy/l7/request_trace.h"
#include "route/fields.h"

namespace usher::proxy::l7 {

namespace {

// The fields the router and the header policy read, found in one pass.
struct RequestFields {
  std::string_view host;
  std::string_view request_id;
  std::string_view forwarded_proto;  // from a trusted peer only
  bool idempotency_key = false;
};

RequestFields scan_fields(const http1::RequestHead& head, bool trusted_peer) {
  RequestFields f;
  for (const http1::Header& h : head.headers) {
    switch (h.id) {
      case http1::HeaderId::kHost:
        f.host = h.value;
        break;
      case http1::HeaderId::kXRequestId:
        if (f.request_id.empty()) f.request_id = h.value;
        break;
      case http1::HeaderId::kXForwardedProto:
        if (trusted_peer && f.forwarded_proto.empty()) f.forwarded_proto = h.value;
        break;
      case http1::HeaderId::kIdempotencyKey:
        f.idempotency_key = true;
        break;
      default:
        break;
    }
  }
  return f;
}

// Request ids from clients are kept when they are short and plain; anything else is replaced,
// so that logs and backends never see control characters or megabyte-long ids.
bool valid_request_id(std::string_view id) {
  if (id.empty() || id.size() > kMaxRequestIdLength) return false;
  for (char ch : id) {
    bool ok = (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
              ch == '-' || ch == '_' || ch == '.' || ch == ':' || ch == '+' || ch == '/' ||
              ch == '=';
    if (!ok) return false;
  }
  return true;
}

// A random UUID (version 4) as text: 8-4-4-4-12 hex digits.
void generate_request_id(Worker& w, ShortText<kMaxRequestIdLength>& out) {
  constexpr char kHex[] = "0123456789abcdef";
  uint64_t high = (w.random() & ~0xf000ULL) | 0x4000ULL;       // version 4
  uint64_t low = (w.random() & ~(3ULL << 62)) | (2ULL << 62);  // RFC 4122 variant
  char* p = out.data;
  for (int i = 0; i < 32; ++i) {
    if (i == 8 || i == 12 || i == 16 || i == 20) *p++ = '-';
    uint64_t word = i < 16 ? high : low;
    *p++ = kHex[(word >> (60 - 4 * (i % 16))) & 0xf];
  }
  out.size = 36;
}

// The real client behind trusted proxies: walking X-Forwarded-For from the right, the first
// address that is not itself a trusted proxy (nginx's real_ip_recursive).
std::string_view real_client_ip(const Client& c, const http1::RequestHead& head) {
  std::string_view client = c.ip();
  if (!c.trusted_peer) return client;
  for (size_t i = head.headers.size(); i-- > 0;) {
    const http1::Header& h = head.headers[i];
    if (h.id != http1::HeaderId::kXForwardedFor) continue;
    std::string_view list = h.value;
    while (!list.empty()) {
      size_t comma = list.rfind(',');
      std::string_view element =
          http1::trim_ows(list.substr(comma == std::string_view::npos ? 0 : comma + 1));
      list = list.substr(0, comma == std::string_view::npos ? 0 : comma);
      if (element.empty()) continue;
      IpBytes ip = IpBytes::from_text(element);
      if (ip.family == 0) return client;
      client = element;
      if (!trusted(*c.routes, ip)) return client;
    }
  }
  return client;
}

// What every local response shares: the request id, and the connection ends when the request
// came with a body usher did not read.
LocalResponse local_response_for(const RequestInfo& info) {
  LocalResponse response;
  response.request_id = info.request_id.view();
  response.close = !info.keep_alive || !info.replayable();
  response.head_only = info.method == http1::Method::kHead;
  return response;
}

// The Location of a redirect route, from its parts and the request's.
size_t write_redirect(const config::Redirect& r, const route::RequestView& view,
                      std::string_view host_field, const RequestInfo& info, net::Buffer& out) {
  const std::string_view request_scheme = info.https_client ? "https" : "http";
  const std::string_view scheme = r.scheme.empty() ? request_scheme : r.scheme;
  // A new scheme means a new default port: the request's port would be wrong.
  const std::string_view host = !r.host.empty()            ? std::string_view(r.host)
                                : scheme != request_scheme ? view.host
                                                           : host_field;
  const std::string_view path = r.path.empty() ? view.path : std::string_view(r.path);
  const bool query = !view.query.empty();
  const std::string_view location[] = {
      scheme, "://", host, path, query ? "?" : "", query ? view.query : ""};
  LocalResponse response = local_response_for(info);
  response.status = r.status;
  response.location = location;
  return write_local_response(response, out.data(), out.capacity());
}

size_t write_fixed(const config::FixedResponse& r, const RequestInfo& info, net::Buffer& out) {
  LocalResponse response = local_response_for(info);
  response.status = r.status;
  response.content_type = r.content_type;
  response.body = r.body;
  return write_local_response(response, out.data(), out.capacity());
}

// Where the path rewrite of a route applies: the target sent is new_prefix followed by the
// target after `strip` bytes (an absolute-form target becomes origin-form).
void plan_rewrite(const config::Route& route, const http1::RequestHead& head, std::string_view path,
                  RequestRewrite& rewrite) {
  const std::string_view prefix =
      route.prefix_rewrite.empty() ? route.strip_prefix : route.match.path->text;
  if (prefix.empty() || !path.starts_with(prefix)) return;
  rewrite.strip = static_cast<size_t>(path.data() - head.target.data()) + prefix.size();
  rewrite.new_prefix = route.prefix_rewrite;
  if (rewrite.new_prefix.empty() && !head.target.substr(rewrite.strip).starts_with('/'))
    rewrite.new_prefix = "/";
}

// The sticky cookie names a backend of this pool: remember which.
void read_sticky(const PoolState& pool, const http1::RequestHead& head, RequestInfo& info,
                 RequestRewrite& rewrite) {
  const config::Sticky& sticky = *pool.config.sticky;
  rewrite.sticky = {sticky.cookie, sticky.mode == config::Sticky::Mode::kPrefix};
  auto value = route::find_cookie(head.headers, sticky.cookie);
  if (!value) return;
  std::string_view id = *value;
  if (rewrite.sticky.prefix_mode) id = id.substr(0, id.find('~'));
  info.sticky_backend = pool.sticky_backend(id);
}

// Serialises the head for the backend of a pool route.
Failure write_forwarded_head(Client& c, const http1::RequestHead& head,
                             const route::RequestView& view, RequestInfo& info, net::Buffer& out) {
  const ListenerRoutes& routes = *c.routes;
  const config::Route& route = *info.target->config;
  PoolState& pool = *info.target->pool;
  info.marked_idempotent = info.marked_idempotent || route.idempotent;
  RequestRewrite rewrite;
  rewrite.peer_ip = c.ip();
  rewrite.https = c.secure();
  rewrite.trusted_peer = c.trusted_peer;
  rewrite.forwarded = routes.config.forwarded;
  rewrite.port = routes.port;
  rewrite.request_id = info.request_id.view();
  rewrite.strip_expect = head.expect_continue;
  if (!route.request_headers.empty()) rewrite.edits = &route.request_headers;
  rewrite.values = {info.client_ip.view(), info.request_id.view(), {}, info.tls, {}};
  if (route.request_headers.uses_geo_country()) {
    rewrite.values.geo_country = info.client.place().country_code();
  }
  plan_rewrite(route, head, view.path, rewrite);
  if (pool.config.sticky) read_sticky(pool, head, info, rewrite);
  if (pool.balancer().key_source() == balance::KeySource::kHash) {
    info.key_hash = request_key_hash(head, pool.config.hash_key, info.client_ip.view());
  }
  begin_trace(c, head, view.path, rewrite);
  size_t n = write_request_head(head, rewrite, out.data(), out.capacity());
  if (n == 0) return Failure::client(431);  // the head grew past the buffer with usher's fields
  out.commit(n);
  return {};
}

// Keeps what the access log needs of the head; a target too long for the buffer is cut.
void capture_for_log(Worker& w, const http1::RequestHead& head, std::string_view host,
                     LoggedFields& out) {
  std::string_view referer, user_agent;
  for (const http1::Header& h : head.headers) {
    if (referer.empty() && http1::iequals(h.name, "referer")) referer = h.value;
    if (user_agent.empty() && http1::iequals(h.name, "user-agent")) user_agent = h.value;
  }
  out.text = w.buffers().take();
  const std::string_view fields[] = {head.method_text, host, head.target, referer, user_agent};
  for (size_t i = 0; i < LoggedFields::kCount; ++i) {
    size_t n = std::min(fields[i].size(), out.text.tail_room());
    std::copy_n(fields[i].data(), n, out.text.tail());
    out.text.commit(n);
    out.lengths[i] = static_cast<uint32_t>(n);
  }
}

}  // namespace

// Routes a parsed request and serialises what is sent next: the head for the backend, or
// usher's own complete response.
Failure prepare_request(Client& c, const http1::RequestHead& head, RequestInfo& info,
                        net::Buffer& out) {
  Worker& w = c.worker;
  const ListenerRoutes& routes = *c.routes;
  const RequestFields fields = scan_fields(head, c.trusted_peer);
  info.body_kind = head.framing.kind;
  info.body_length = head.framing.length;
  info.method = head.method;
  info.http10 = head.version_minor == 0;
  // A drain answers with Connection: close (a proxied response decides again at its head).
  info.keep_alive = head.keep_alive && !w.draining();
  info.expect_continue = head.expect_continue;
  info.upgrade = head.upgrade;
  info.websocket_upgrade = head.upgrade && http1::iequals(head.upgrade_protocol, "websocket");
  info.marked_idempotent = fields.idempotency_key;
  info.https_client = c.secure() || http1::iequals(fields.forwarded_proto, "https");
  info.tls = c.tls_facts;
  info.client_ip.assign(real_client_ip(c, head));
  // The real client is the peer unless a trusted proxy named another: only then parse its text.
  info.client = geo::Locator(c.gen->shared->geoip.get(),
                             c.trusted_peer ? IpBytes::from_text(info.client_ip.view()) : c.peer);
  if (routes.config.request_id) {
    if (valid_request_id(fields.request_id)) {
      info.request_id.assign(fields.request_id);
    } else {
      generate_request_id(w, info.request_id);
    }
  }
  c.current.request_id = info.request_id.view();
  if (c.config().access_log.target != config::AccessLog::Target::kOff) {
    capture_for_log(w, head, fields.host, info.logged);
  }
  char host[route::kMaxHost];
  route::RequestView view{
      head.method_text, route::normalize_host(fields.host, host), {}, {}, head.headers,
      &info.client};
  route::split_target(head.target, view.path, view.query);
  const uint32_t index = routes.table.match(view);
  out = w.buffers().take();
  size_t n = 0;
  int status = 0;
  const RouteTarget* matched = index == route::kNoRoute ? nullptr : &routes.targets[index];
  const GuardRefusal refusal = check_guards(c, head, info, matched, local_response_for(info), out);
  if (refusal.wait) return {};  // Client::lease says what for
  if (refusal.status) {
    info.target = matched;
    n = refusal.bytes;
    status = refusal.status;
  } else if (index == route::kNoRoute) {
    static const config::FixedResponse kNoRoute{404, "no route for this request\n",
                                                "text/plain; charset=utf-8"};
    n = write_fixed(kNoRoute, info, out);
    status = kNoRoute.status;
  } else {
    info.target = &routes.targets[index];
    const config::Route& route = *info.target->config;
    switch (route.action) {
      case config::Route::Action::kPool:
        return write_forwarded_head(c, head, view, info, out);
      case config::Route::Action::kRedirect:
        n = write_redirect(route.redirect, view, fields.host, info, out);
        status = route.redirect.status;
        break;
      case config::Route::Action::kRespond:
        n = write_fixed(route.respond, info, out);
        status = route.respond.status;
        break;
    }
  }
  if (n == 0) return Failure::internal(500);  // a configured response larger than a buffer
  out.commit(n);
  info.local = true;
  info.local_status = status;
  return {};
}

}  // namespace usher::proxy::l7
