#pragma once
// Tracing of one request sent to a pool (src/trace, W3C Trace Context): its context, from the
// client's `traceparent` or new; a server span for usher's handling and a client span per try,
// whose id is the parent the backend is told; and at its end, when it is exported (sampled,
// failed or slow), its spans handed to the worker's trace channel. Worker thread only.
#include <cstdint>
#include <string_view>

#include "codec/http1/message.h"
#include "net/buffer_pool.h"
#include "trace/context.h"

namespace usher::proxy::l7 {

struct Client;
struct Failure;
struct RequestInfo;
struct RequestRewrite;

// Lives in the request's coroutine frame: an idle connection holds none of it.
struct RequestTrace {
  static constexpr size_t kMaxTries = 10;  // retries.attempts is at most this
  struct Try {
    uint64_t span;
    uint64_t start_ns;  // Unix time
    uint64_t end_ns;
    uint32_t backend;  // slot in the request's pool
    uint16_t status;   // the backend's response status; 0: none came
    uint8_t error;     // metrics::UpstreamError + 1; 0: none
  };

  bool active = false;  // tracing is on and the request went to a pool
  bool sampled = false;
  uint8_t tries = 0;
  trace::TraceId trace;
  uint64_t parent = 0;         // the client's span; 0: usher started the trace
  uint64_t span = 0;           // usher's server span
  int64_t unix_offset_ns = 0;  // Unix time minus the steady clock, taken once per request
  // Only ever written before being read: left uninitialised.
  char traceparent[trace::kTraceparentLength];
  char tracestate[trace::kMaxTracestate];
  uint8_t method_size = 0;
  uint8_t path_size = 0;
  char method[16];
  char path[200];
  Try try_spans[kMaxTries];
};

// prepare: when the request's generation traces, starts its trace and sets the fields the
// backend gets (`rewrite.traceparent`, `rewrite.tracestate`). `path` is the client's.
void begin_trace(Client& c, const http1::RequestHead& head, std::string_view path,
                 RequestRewrite& rewrite);

// exchange: a try begins (a new span, named in the request head's traceparent) and ends.
void begin_try(Client& c, net::Buffer& request_head);
void end_try(Client& c, uint32_t backend, int status, const Failure& failure);

// The request has ended: its spans go to the exporter if they are exported.
void end_trace(Client& c, const RequestInfo& info);

}  // namespace usher::proxy::l7
