#include "proxy/l7/request_trace.h"

#include <netinet/in.h>

#include <algorithm>
#include <chrono>
#include <cstring>

#include "proxy/l7/failure.h"
#include "proxy/l7/head_writer.h"
#include "proxy/l7/session.h"
#include "proxy/worker.h"

namespace usher::proxy::l7 {

namespace {

using trace::SpanRecord;
using Text = SpanRecord::Text;

int64_t nanos(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

uint64_t unix_ns(const RequestTrace& t, std::chrono::steady_clock::time_point at) {
  return static_cast<uint64_t>(nanos(at) + t.unix_offset_ns);
}

uint64_t unix_now(const RequestTrace& t) {
  return unix_ns(t, std::chrono::steady_clock::now());
}

uint8_t copy_cut(std::string_view from, char* to, size_t cap) {
  const size_t n = std::min(from.size(), cap);
  std::memcpy(to, from.data(), n);
  return static_cast<uint8_t>(n);
}

void fill_server_span(SpanRecord& r, const Client& c, const RequestTrace& t,
                      const RequestInfo& info, uint64_t end_ns) {
  r.trace = t.trace;
  r.span = t.span;
  r.parent = t.parent;
  r.start_ns = unix_ns(t, c.current.started);
  r.end_ns = end_ns;
  r.status = static_cast<uint16_t>(c.current.status);
  r.kind = trace::SpanKind::kServer;
  r.retry = 0;
  r.backend_family = 0;
  r.set(Text::kMethod, {t.method, t.method_size});
  r.set(Text::kPath, {t.path, t.path_size});
  const RouteTarget* target = info.target;
  r.set(Text::kRoute, target ? std::string_view(target->config->name) : std::string_view());
  r.set(Text::kPool,
        target && target->pool ? std::string_view(target->pool->config.name) : std::string_view());
  r.set(Text::kError, c.current.guard ? std::string_view(c.current.guard) : std::string_view());
}

// The texts it shares with the server span are the exporter's to copy.
void fill_client_span(SpanRecord& r, const RequestTrace& t, const PoolState* pool, uint8_t index) {
  const RequestTrace::Try& s = t.try_spans[index];
  r.trace = t.trace;
  r.span = s.span;
  r.parent = t.span;
  r.start_ns = s.start_ns;
  r.end_ns = s.end_ns;
  r.status = s.status;
  r.kind = trace::SpanKind::kClient;
  r.retry = index;
  r.backend_family = 0;
  if (pool && s.backend != balance::kNoBackend) {
    const Address& a = pool->slot(s.backend).address;
    r.backend_port = a.port();
    if (a.family() == AF_INET) {
      r.backend_family = AF_INET;
      std::memcpy(r.backend_ip, &reinterpret_cast<const sockaddr_in*>(a.sockaddr_ptr())->sin_addr,
                  4);
    } else if (a.family() == AF_INET6) {
      r.backend_family = AF_INET6;
      std::memcpy(r.backend_ip, &reinterpret_cast<const sockaddr_in6*>(a.sockaddr_ptr())->sin6_addr,
                  16);
    }
  }
  r.clear_texts();
  r.set(Text::kError,
        s.error ? std::string_view(metrics::kUpstreamErrors[s.error - 1]) : std::string_view());
}

}  // namespace

void begin_trace(Client& c, const http1::RequestHead& head, std::string_view path,
                 RequestRewrite& rewrite) {
  RequestTrace* t = c.current.trace;
  const std::optional<config::Tracing>& tracing = c.config().tracing;
  if (!t || !tracing) return;
  // The client's context. Two traceparent fields are as invalid as a malformed one (§3.2.2);
  // without a valid parent, its tracestate is dropped too (§3.3.1.1).
  const http1::Header* parent_field = nullptr;
  int parents = 0;
  constexpr size_t kMostStateFields = 8;  // 512 characters hold no more useful lists
  std::string_view states[kMostStateFields];
  size_t state_fields = 0;
  for (const http1::Header& h : head.headers) {
    if (h.id == http1::HeaderId::kTraceparent) {
      parent_field = &h;
      ++parents;
    } else if (h.id == http1::HeaderId::kTracestate && state_fields < kMostStateFields) {
      states[state_fields++] = h.value;
    }
  }
  const std::optional<trace::Parent> parent =
      parents == 1 ? trace::parse_traceparent(parent_field->value) : std::nullopt;
  trace::Channel& ids = c.worker.trace();
  t->active = true;
  t->tries = 0;
  t->trace = parent ? parent->trace : trace::TraceId{ids.new_id(), ids.new_id()};
  t->parent = parent ? parent->span : 0;
  t->span = ids.new_id();
  t->sampled = trace::sampled_at_start(parent, t->trace, tracing->sample);
  t->unix_offset_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count() -
                      nanos(std::chrono::steady_clock::now());
  t->method_size = copy_cut(head.method_text, t->method, sizeof t->method);
  t->path_size = copy_cut(path, t->path, sizeof t->path);
  // The span id is each try's, written in by begin_try.
  trace::write_traceparent(t->trace, t->span, t->sampled, t->traceparent);
  rewrite.traceparent = {t->traceparent, trace::kTraceparentLength};
  if (parent) {
    rewrite.tracestate = {t->tracestate,
                          trace::bound_tracestate({states, state_fields}, t->tracestate)};
  }
}

void begin_try(Client& c, net::Buffer& request_head) {
  RequestTrace* t = c.current.trace;
  if (!t || !t->active || t->tries == RequestTrace::kMaxTries) return;
  RequestTrace::Try& s = t->try_spans[t->tries];
  s = {c.worker.trace().new_id(), unix_now(*t), 0, balance::kNoBackend, 0, 0};
  // The head starts with its request line, then the traceparent field (write_request_head).
  constexpr std::string_view kField = "traceparent: ";
  const std::string_view head(request_head.begin(), request_head.size());
  const size_t line_end = head.find('\n');
  const size_t at = line_end + 1 + kField.size() + trace::kSpanIdOffset;
  if (line_end == std::string_view::npos || head.size() < at + 16 ||
      head.substr(line_end + 1, kField.size()) != kField) {
    return;
  }
  char* begin = request_head.data() + (request_head.begin() - request_head.data());
  trace::write_hex(s.span, begin + at);
}

void end_try(Client& c, uint32_t backend, int status, const Failure& failure) {
  RequestTrace* t = c.current.trace;
  if (!t || !t->active || t->tries == RequestTrace::kMaxTries) return;
  RequestTrace::Try& s = t->try_spans[t->tries++];
  s.end_ns = unix_now(*t);
  s.backend = backend;
  s.status = static_cast<uint16_t>(status);
  metrics::UpstreamError kind;
  if (failure.side == Failure::Side::kUpstream && upstream_error_kind(failure.cause, kind)) {
    s.error = static_cast<uint8_t>(static_cast<uint8_t>(kind) + 1);
  }
}

void end_trace(Client& c, const RequestInfo& info) {
  RequestTrace* t = std::exchange(c.current.trace, nullptr);
  if (!t || !t->active) return;
  const uint64_t end_ns = unix_now(*t);
  const double seconds = static_cast<double>(end_ns - unix_ns(*t, c.current.started)) / 1e9;
  const double slow = std::chrono::duration<double>(c.config().tracing->slow).count();
  if (!trace::exported_at_end(t->sampled, c.current.status, seconds, slow)) return;
  // All of the request's spans or none: a client span never goes without its server span.
  trace::Channel& channel = c.worker.trace();
  const size_t spans = 1u + t->tries;
  if (!channel.reserve(spans)) return;
  fill_server_span(channel.reserved(0), c, *t, info, end_ns);
  const PoolState* pool = info.target ? info.target->pool : nullptr;
  for (uint8_t i = 0; i < t->tries; ++i) fill_client_span(channel.reserved(1u + i), *t, pool, i);
  channel.commit(spans);
}

}  // namespace usher::proxy::l7
