#include "proxy/l4/tcp.h"

#include <sys/socket.h>

#include <chrono>
#include <cstring>
#include <string>

#include <fmt/format.h>

#include "balance/picker.h"
#include "base/ip_range.h"
#include "log/access_log.h"
#include "proxy/l4/backend_connect.h"
#include "proxy/l4/prelude.h"
#include "proxy/l4/relay_pair.h"
#include "proxy/l7/stream.h"
#include "proxy/proxy_header.h"
#include "proxy/worker.h"

// A tcp listener's connection: admit the client, read what must be read before relaying (a
// PROXY header from a trusted balancer, the ClientHello's name when routing by it), choose the
// route and a backend, connect (the next candidate when a connect fails, so a client never sees
// a refused backend), write the PROXY header the pool wants and the bytes already read, then
// splice both ways until both have ended.
namespace usher::proxy::l4 {

namespace {

using metrics::TcpEnd;

// The client's side of one connection, with what its log line needs.
struct Connection {
  Connection(Worker& w, int fd, Endpoint& e)
      : worker(w), socket(w.reactor(), fd), started(std::chrono::steady_clock::now()) {
    link.client = &socket;
    link.endpoint = &e;
    link.idle = false;  // a drain lets relayed connections run until the process ends
  }

  Worker& worker;
  net::Socket socket;
  SessionLink link;
  std::chrono::steady_clock::time_point started;
  Address peer;   // the address it came from: the TCP peer, or a trusted PROXY header's source
  Address local;  // where it arrived: the listener, or a trusted PROXY header's destination
  char ip_text[46] = {};
  Prelude prelude;
  const RouteTarget* target = nullptr;
  std::string backend;  // name, once connected
  double connect_seconds = -1;
  RelayTotals totals;
  TcpEnd end = TcpEnd::kDone;
};

Address sockname(int fd, bool peer) {
  sockaddr_storage storage{};
  socklen_t length = sizeof storage;
  auto* address = reinterpret_cast<sockaddr*>(&storage);
  const int rc = peer ? ::getpeername(fd, address, &length) : ::getsockname(fd, address, &length);
  if (rc != 0) return {};
  return Address::from_sockaddr(address, length);
}

// "db.example.com" exact, "*.example.com" any name below example.com.
bool sni_matches(std::string_view pattern, std::string_view name) {
  if (pattern.starts_with("*.")) {
    return name.size() > pattern.size() - 1 && name.ends_with(pattern.substr(1));
  }
  return pattern == name;
}

// The first route whose name matches (a route without one matches every connection).
const RouteTarget* choose_route(const ListenerRoutes& routes, std::string_view sni) {
  for (const RouteTarget& target : routes.targets) {
    const std::string& pattern = target.config->match.sni;
    if (pattern.empty() || (!sni.empty() && sni_matches(pattern, sni))) return &target;
  }
  return nullptr;
}

bool routes_by_sni(const config::Listener& listener) {
  for (const config::Route& route : listener.routes) {
    if (!route.match.sni.empty()) return true;
  }
  return false;
}

void log_connection(Connection& c, std::string_view listener, const config::Config& config) {
  if (config.access_log.target == config::AccessLog::Target::kOff) return;
  log::ConnectionRecord r;
  const std::string client = c.peer.to_string();
  r.client = client;
  r.listener = listener;
  if (c.target) {
    r.route = c.target->config->name;
    r.pool = c.target->pool->config.name;
  }
  r.backend = c.backend;
  r.sni = c.prelude.sni;
  r.end = metrics::kTcpEnds[static_cast<size_t>(c.end)];
  std::string failure;
  if (c.end == TcpEnd::kError && c.totals.error != 0) {
    const char* name = ::strerrorname_np(static_cast<int>(-c.totals.error));
    failure = fmt::format("{} {}", c.totals.client_failed ? "client" : "backend",
                          name ? name : "unknown");
    r.failure = failure;
  }
  r.bytes_from_client = c.totals.to_backend + c.prelude.early.size();
  r.bytes_to_client = c.totals.to_client;
  r.duration_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - c.started).count();
  r.connect_seconds = c.connect_seconds;
  c.worker.access_log().append(config.access_log.format, r);
}

// Reads the prelude and picks the route; false with c.end set when the connection ends here.
net::Task<bool> route_connection(Connection& c, const ListenerRoutes& routes,
                                 const config::Config& config) {
  const config::Listener& listener = routes.config;
  const bool from_balancer =
      sends_proxy_header(listener, IpBytes::from_sockaddr(c.peer.sockaddr_ptr()));
  PreludeWants wants;
  wants.proxy_header = from_balancer;
  if (from_balancer) {
    wants.v1 = listener.proxy_protocol->v1;
    wants.v2 = listener.proxy_protocol->v2;
  }
  wants.server_name = routes_by_sni(listener);
  if (wants.proxy_header || wants.server_name) {
    const uint64_t deadline = c.worker.reactor().now_ms() + config.timeouts.header.count();
    if (!co_await read_prelude(c.socket, wants, deadline, c.prelude)) {
      c.end = TcpEnd::kBadClient;
      co_return false;
    }
    if (c.prelude.source) c.peer = *c.prelude.source;
    if (c.prelude.destination) c.local = *c.prelude.destination;
  }
  c.target = choose_route(routes, c.prelude.sni);
  if (!c.target) c.end = TcpEnd::kNoRoute;
  co_return c.target != nullptr;
}

// Connects, sends what goes first and relays until the end; c.end says how it went.
net::Task<void> relay(Connection& c, const ListenerRoutes& routes, const config::Config& config) {
  PoolState& pool = *c.target->pool;
  format_ip(c.peer.sockaddr_ptr(), c.ip_text, sizeof c.ip_text);
  BackendConnection up = co_await connect_backend(c.worker, pool, balance::hash_key(c.ip_text),
                                                  pool.config.timeouts.connect);
  if (!up.socket) {
    c.end = TcpEnd::kNoBackend;
    co_return;
  }
  c.backend = pool.slot(up.index).name;
  c.connect_seconds = up.connect_seconds;
  const std::string header = proxy_header_for(pool.config.proxy_protocol, c.peer, c.local,
                                              c.prelude.alpn, c.prelude.authority);
  const uint64_t idle_ms = static_cast<uint64_t>(config.timeouts.tcp_idle.count());
  const bool sent = co_await l7::write_all(*up.socket, header, c.prelude.early,
                                           c.worker.reactor().now_ms() + idle_ms);
  if (!sent) {
    c.totals.error = -EPIPE;  // the backend took the connection but not its first bytes
  } else {
    RelayOptions options;
    options.mode = routes.config.relay;
    options.idle_ms = idle_ms;
    // A PROXY header from a client the listener does not trust is refused, not relayed.
    options.refuse_proxy_header = routes.config.proxy_protocol && !c.prelude.proxy_header_read;
    c.totals = co_await relay_pair(c.socket, *up.socket, c.worker.buffers(), options);
  }
  metrics::BackendCounters& counters = c.worker.metrics().backends[pool.backend_id(up.index)];
  counters.bytes_sent.add(c.totals.to_backend + header.size() + c.prelude.early.size());
  counters.bytes_received.add(c.totals.to_client);
  if (c.totals.error != 0 && !c.totals.client_failed) {
    counters.errors[static_cast<size_t>(metrics::UpstreamError::kReset)].add();
  }
  release_backend(pool, up.index);
  if (c.totals.error != 0) {
    c.end = c.totals.error == -EPROTO ? TcpEnd::kBadClient : TcpEnd::kError;
    // A reset on one side is passed on as a reset: the peer must not take a cut stream for a
    // complete one.
    l7::abort_connection(c.socket);
    l7::abort_connection(*up.socket);
  } else if (c.totals.idle) {
    c.end = TcpEnd::kIdle;
  }
}

}  // namespace

net::Task<void> serve_tcp(Worker& worker, int fd, Endpoint& endpoint) {
  Connection c(worker, fd, endpoint);
  if (endpoint.listener < 0) co_return;  // a reload removed its listener meanwhile
  // A relayed connection holds its generation to the end, as a request does.
  GenerationRef gen = worker.generation();
  const ListenerRoutes& routes = gen->listeners[static_cast<size_t>(endpoint.listener)];
  const config::Config& config = gen->config();
  metrics::ListenerCounters& counters = worker.metrics().listeners[routes.metric_id];
  c.peer = sockname(fd, true);
  c.local = sockname(fd, false);
  Admission admission;
  const IpBytes peer_ip = IpBytes::from_sockaddr(c.peer.sockaddr_ptr());
  if (const auto refused = Admission::admit(routes.guard, peer_ip, admission)) {
    counters.refused[*refused].add();
    co_return;
  }
  worker.add_session(c.link);
  counters.connections.add();
  counters.tcp.active.add(1);
  if (co_await route_connection(c, routes, config)) co_await relay(c, routes, config);
  counters.tcp.ended[static_cast<size_t>(c.end)].add();
  counters.tcp.bytes_from_clients.add(c.totals.to_backend + c.prelude.early.size());
  counters.tcp.bytes_to_clients.add(c.totals.to_client);
  counters.tcp.spliced.add(static_cast<uint64_t>(c.totals.spliced));
  counters.tcp.active.add(-1);
  log_connection(c, gen->shared->listener_labels[static_cast<size_t>(endpoint.listener)], config);
  worker.remove_session(c.link);
}

}  // namespace usher::proxy::l4
