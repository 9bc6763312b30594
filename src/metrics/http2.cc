// The HTTP/2 families: connections, requests by the protocol the client spoke, and the protocol
// errors and floods that ended connections or streams.
#include "metrics/merge.h"
#include "metrics/registry.h"

namespace usher::metrics {

void Registry::write_http2(Exposition& e, const Layout& layout) const {
  const auto& s = shards_;
  e.family("usher_http_requests_total", "counter",
           "Requests on http listeners by the protocol the client spoke (HTTP/1.1 includes 1.0).");
  for (const Layout::Named& l : layout.listeners) {
    for (size_t p = 0; p < 2; ++p) {
      e.sample("usher_http_requests_total",
               {{"listener", l.name}, {"protocol", p == 0 ? "HTTP/1.1" : "HTTP/2"}},
               merged(s, [id = l.id, p](const Shard& x) -> const Counter& {
                 return x.listeners[id].requests_by_protocol[p];
               }));
    }
  }
  e.family("usher_http2_connections_total", "counter",
           "Client connections that spoke HTTP/2 (h2 by ALPN, or h2c with prior knowledge).");
  for (const Layout::Named& l : layout.listeners) {
    e.sample("usher_http2_connections_total", {{"listener", l.name}},
             merged(s, [id = l.id](const Shard& x) -> const Counter& {
               return x.listeners[id].http2_connections;
             }));
  }
  e.family("usher_http2_protocol_errors_total", "counter",
           "HTTP/2 client connections ended (GOAWAY) or streams reset by usher, by reason: "
           "framing errors, and the flood defences (docs/http2.md).");
  for (const Layout::Named& l : layout.listeners) {
    for (size_t k = 0; k < kHttp2ErrorKinds; ++k) {
      e.sample("usher_http2_protocol_errors_total",
               {{"listener", l.name}, {"reason", kHttp2Errors[k]}},
               merged(s, [id = l.id, k](const Shard& x) -> const Counter& {
                 return x.listeners[id].http2_errors[k];
               }));
    }
  }
}

}  // namespace usher::metrics
