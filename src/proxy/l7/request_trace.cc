#include "proxy/l7/request_trace.h"

#include <algorithm>
#include <charconv>
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

// "ip:port", or "[ip]:port" for IPv6, without allocating.
std::string_view address_text(const Address& a, char (&out)[INET6_ADDRSTRLEN + 8]) {
  const bool v6 = a.family() == AF_INET6;
  size_t n = v6 ? 1 : 0;
  n += format_ip(a.sockaddr_ptr(), out + n, sizeof out - n - 8);
  if (v6) {
    out[0] = '[';
    out[n++] = ']';
  }
  out[n++] = ':';
  n = static_cast<size_t>(std::to_chars(out + n, out + sizeof out, a.port()).ptr - out);
  return {out, n};
}

// What every span of the request shares.
void fill_common(SpanRecord& r, const RequestTrace& t, const RequestInfo& info) {
  r.trace = t.trace;
  r.set(Text::kMethod, {t.method, t.method_size});
  r.set(Text::kPath, {t.path, t.path_size});
  const RouteTarget* target = info.target;
  r.set(Text::kRoute, target ? std::string_view(target->config->name) : std::string_view());
  r.set(Text::kPool,
        target && target->pool ? std::string_view(target->pool->config.name) : std::string_view());
  r.set(Text::kBackend, {});
  r.set(Text::kError, {});
  r.retry = 0;
}

void push_server_span(trace::Channel& channel, const Client& c, const RequestTrace& t,
                      const RequestInfo& info, uint64_t end_ns) {
  SpanRecord* r = channel.reserve();
  if (!r) return;
  fill_common(*r, t, info);
  r->kind = trace::SpanKind::kServer;
  r->span = t.span;
  r->parent = t.parent;
  r->start_ns = unix_ns(t, c.current.started);
  r->end_ns = end_ns;
  r->status = static_cast<uint16_t>(c.current.status);
  if (c.current.guard) r->set(Text::kError, c.current.guard);
  channel.commit();
}

void push_client_span(trace::Channel& channel, const RequestTrace& t, const RequestInfo& info,
                      uint8_t index) {
  SpanRecord* r = channel.reserve();
  if (!r) return;
  const RequestTrace::Try& s = t.try_spans[index];
  fill_common(*r, t, info);
  r->kind = trace::SpanKind::kClient;
  r->span = s.span;
  r->parent = t.span;
  r->start_ns = s.start_ns;
  r->end_ns = s.end_ns;
  r->status = s.status;
  r->retry = index;
  const PoolState* pool = info.target ? info.target->pool : nullptr;
  if (pool && s.backend != balance::kNoBackend) {
    char text[INET6_ADDRSTRLEN + 8];
    r->set(Text::kBackend, address_text(pool->slot(s.backend).address, text));
  }
  if (s.error) r->set(Text::kError, metrics::kUpstreamErrors[s.error - 1]);
  channel.commit();
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
  trace::Channel& channel = c.worker.trace();
  push_server_span(channel, c, *t, info, end_ns);
  for (uint8_t i = 0; i < t->tries; ++i) push_client_span(channel, *t, info, i);
}

}  // namespace usher::proxy::l7
