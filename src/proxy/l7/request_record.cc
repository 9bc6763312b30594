#include "proxy/l7/request_record.h"

#include <chrono>
#include <string_view>

#include "proxy/l7/request_trace.h"
#include "proxy/worker.h"

namespace usher::proxy::l7 {

namespace {

// Logged for a request whose client went before its answer (nginx's convention): a line that
// says so, where there would otherwise be no trace of the request at all.
constexpr int kClientClosedRequest = 499;

// One access log line for a finished request: answered, or read and then abandoned by its
// client (a connection that ends between requests, or inside a head, has no request to log).
void log_request(Client& c, const RequestInfo& info, double seconds, std::string_view pick) {
  const config::AccessLog& wanted = c.config().access_log;
  const int status = c.current.status           ? c.current.status
                     : c.current.bytes_received ? kClientClosedRequest
                                                : 0;
  if (wanted.target == config::AccessLog::Target::kOff || status == 0) return;
  using Field = LoggedFields::Field;
  const config::Listener& listener = c.routes->config;
  log::RequestRecord r;
  r.client = info.client_ip.size ? info.client_ip.view() : c.ip();
  r.method = info.logged.get(Field::kMethod);
  r.host = info.logged.get(Field::kHost);
  r.target = info.logged.get(Field::kTarget);
  r.referer = info.logged.get(Field::kReferer);
  r.user_agent = info.logged.get(Field::kUserAgent);
  r.request_id = info.request_id.view();
  r.protocol = info.http10 ? std::string_view("HTTP/1.0") : std::string_view(c.protocol);
  r.status = status;
  r.bytes_sent = c.current.bytes_sent;
  r.bytes_received = c.current.bytes_received;
  r.duration_seconds = seconds;
  r.listener = listener.name.empty() ? std::string_view("-") : std::string_view(listener.name);
  if (info.target) {
    r.route = info.target->config->name;
    if (const PoolState* pool = info.target->pool) {
      r.pool = pool->config.name;
      if (c.current.backend != balance::kNoBackend) {
        r.backend = pool->slot(c.current.backend).name;
        if (c.current.upstream_seconds > 0) r.upstream_seconds = c.current.upstream_seconds;
      }
    }
  }
  r.retries = c.current.retries;
  r.tls_version = c.tls_facts.version;
  r.tls_cipher = c.tls_facts.cipher;
  r.sni = c.tls_facts.sni;
  r.queue_ms = c.current.queue_ms;
  if (c.current.guard) r.guard = c.current.guard;
  r.pick = pick;
  // The combined format has no field for it: no lookup for that one.
  if (c.gen->shared->geoip && wanted.format == config::AccessLog::Format::kJson) {
    r.located = true;
    r.geo_country = info.client.place().country_code();
  }
  c.worker.access_log().append(wanted.format, r);
}

// Counts a finished request: what its client was answered, on its listener and route.
void account(Client& c, const RequestInfo& info, double seconds) {
  metrics::Shard& m = c.worker.metrics();
  metrics::ListenerCounters& listener = m.listeners[c.routes->metric_id];
  listener.bytes_received.add(c.current.bytes_received);
  listener.bytes_sent.add(c.current.bytes_sent);
  listener.requests_by_protocol[c.channel ? 1 : 0].add();
  if (c.current.status == 0) return;
  const size_t status_class = metrics::status_class(c.current.status);
  listener.responses[status_class].add();
  if (!info.target) return;
  metrics::RouteCounters& route = m.routes[info.target->metric_id];
  route.responses[status_class].add();
  route.duration.observe(seconds);
}

}  // namespace

void finish_request(Client& c, const RequestInfo& info) {
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - c.current.started).count();
  account(c, info, seconds);
  char text[RecentPicks::kLongest];
  std::string_view pick;
  PoolState* pool = info.target ? info.target->pool : nullptr;
  if (pool && c.current.pick.recorded) {
    pick = describe_pick(c.current.pick, *pool, c.current.backend, text);
    const uint64_t now_ms = c.worker.reactor().now_ms();
    if (pool->recent_picks.due(now_ms)) {
      const auto wall = std::chrono::system_clock::now().time_since_epoch();
      pool->recent_picks.offer(
          now_ms, std::chrono::duration_cast<std::chrono::milliseconds>(wall).count(), pick);
    }
  }
  log_request(c, info, seconds, pick);
  end_trace(c, info);
  c.current.request_id = {};  // a view into `info`, which ends with the request
}

}  // namespace usher::proxy::l7
