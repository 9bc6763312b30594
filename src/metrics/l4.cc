// The layer-4 families: tcp listeners' connections and bytes, udp listeners' sessions,
// datagrams and drops. Only listeners of that protocol appear in each.
#include <algorithm>
#include <tuple>

#include "metrics/merge.h"
#include "metrics/registry.h"

namespace usher::metrics {

namespace {

template <typename Get>
void gauge(Exposition& e, std::string_view name, std::string_view listener,
           const std::vector<std::unique_ptr<Shard>>& shards, Get get) {
  int64_t total = 0;
  for (const auto& shard : shards) total += get(*shard).read();
  e.sample(name, {{"listener", listener}}, static_cast<uint64_t>(std::max<int64_t>(total, 0)));
}

}  // namespace

void Registry::write_l4(Exposition& e, const Layout& layout) const {
  const auto& s = shards_;
  e.family("usher_tcp_connections_total", "counter",
           "Connections of tcp listeners that ended, by how: done (both sides closed), error, "
           "idle (timeouts.tcp_idle), no_route (no route for the ClientHello's name), no_backend, "
           "bad_client (a bad or untrusted PROXY header or ClientHello, or nothing in time).");
  for (const Layout::Named& l : layout.tcp_listeners) {
    for (size_t k = 0; k < kTcpEndKinds; ++k) {
      e.sample("usher_tcp_connections_total", {{"listener", l.name}, {"end", kTcpEnds[k]}},
               merged(s, [id = l.id, k](const Shard& x) -> const Counter& {
                 return x.listeners[id].tcp.ended[k];
               }));
    }
  }
  e.family("usher_tcp_active_connections", "gauge", "Connections of tcp listeners open now.");
  for (const Layout::Named& l : layout.tcp_listeners) {
    gauge(e, "usher_tcp_active_connections", l.name, s,
          [id = l.id](const Shard& x) -> const Level& { return x.listeners[id].tcp.active; });
  }
  e.family("usher_tcp_bytes_total", "counter",
           "Bytes relayed by tcp listeners: in (from clients), out (to clients).");
  for (const Layout::Named& l : layout.tcp_listeners) {
    for (auto [direction, field] : {std::pair{"in", &TcpCounters::bytes_from_clients},
                                    std::pair{"out", &TcpCounters::bytes_to_clients}}) {
      e.sample("usher_tcp_bytes_total", {{"listener", l.name}, {"direction", direction}},
               merged(s, [id = l.id, field](const Shard& x) -> const Counter& {
                 return x.listeners[id].tcp.*field;
               }));
    }
  }
  e.family("usher_tcp_relay_splices_total", "counter",
           "Directions of tcp connections (relay: auto) that came as a stream and turned from "
           "copying to splice(2).");
  for (const Layout::Named& l : layout.tcp_listeners) {
    e.sample("usher_tcp_relay_splices_total", {{"listener", l.name}},
             merged(s, [id = l.id](const Shard& x) -> const Counter& {
               return x.listeners[id].tcp.spliced;
             }));
  }

  e.family("usher_udp_sessions_total", "counter",
           "Sessions udp listeners started (a client address and port with its backend).");
  for (const Layout::Named& l : layout.udp_listeners) {
    e.sample("usher_udp_sessions_total", {{"listener", l.name}},
             merged(s, [id = l.id](const Shard& x) -> const Counter& {
               return x.listeners[id].udp.sessions;
             }));
  }
  e.family("usher_udp_active_sessions", "gauge", "Sessions of udp listeners open now.");
  for (const Layout::Named& l : layout.udp_listeners) {
    gauge(e, "usher_udp_active_sessions", l.name, s, [id = l.id](const Shard& x) -> const Level& {
      return x.listeners[id].udp.active_sessions;
    });
  }
  for (auto [name, help, in, out] :
       {std::tuple{"usher_udp_datagrams_total",
                   "Datagrams relayed by udp listeners: in (from clients), out (to clients).",
                   &UdpCounters::datagrams_from_clients, &UdpCounters::datagrams_to_clients},
        std::tuple{"usher_udp_bytes_total",
                   "Payload bytes relayed by udp listeners: in (from clients), out (to clients).",
                   &UdpCounters::bytes_from_clients, &UdpCounters::bytes_to_clients}}) {
    e.family(name, "counter", help);
    for (const Layout::Named& l : layout.udp_listeners) {
      for (auto [direction, field] : {std::pair{"in", in}, std::pair{"out", out}}) {
        e.sample(name, {{"listener", l.name}, {"direction", direction}},
                 merged(s, [id = l.id, field](const Shard& x) -> const Counter& {
                   return x.listeners[id].udp.*field;
                 }));
      }
    }
  }
  e.family("usher_udp_dropped_total", "counter",
           "Datagrams from clients that udp listeners dropped: max_sessions (a new client "
           "beyond the bound), denied (allow/deny), no_backend, send_failed.");
  for (const Layout::Named& l : layout.udp_listeners) {
    for (size_t k = 0; k < kUdpDropKinds; ++k) {
      e.sample("usher_udp_dropped_total", {{"listener", l.name}, {"reason", kUdpDrops[k]}},
               merged(s, [id = l.id, k](const Shard& x) -> const Counter& {
                 return x.listeners[id].udp.dropped[k];
               }));
    }
  }
}

}  // namespace usher::metrics
