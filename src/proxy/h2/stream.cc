// One HTTP/2 stream as the L7 path sees it: the request body comes out of read() as HTTP/1.1
// bytes (chunked when the client gave no content-length), and the HTTP/1.1 response written to
// write_all() is parsed back into HEADERS, DATA and trailers. Both directions are bounded: the
// client's window opens only as the body is read, and a response writer waits while more than
// kMaxBufferedOut bytes wait for the client's window.
#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "codec/http1/head_parser.h"
#include "proxy/h2/session.h"
#include "proxy/l7/local_response.h"
#include "proxy/worker.h"

namespace usher::proxy::h2 {

namespace {

constexpr size_t kMaxBufferedOut = 64 * 1024;
// The framing a chunk adds around its data: up to 8 hex digits and two CRLFs.
constexpr size_t kChunkFraming = 12;

}  // namespace

int grpc_status(int http_status) {
  switch (http_status) {
    case 400:
      return 13;  // INTERNAL
    case 401:
      return 16;  // UNAUTHENTICATED
    case 403:
      return 7;  // PERMISSION_DENIED
    case 404:
      return 12;  // UNIMPLEMENTED
    case 408:
    case 504:
      return 4;  // DEADLINE_EXCEEDED
    case 413:
    case 429:
    case 431:
      return 8;  // RESOURCE_EXHAUSTED
    case 502:
    case 503:
      return 14;  // UNAVAILABLE
    default:
      return 2;  // UNKNOWN
  }
}

Stream::Stream(Session& s, int32_t stream_id)
    : session(s), id(stream_id), signal(s.connection.worker.reactor()) {}

size_t Stream::chunk_into(char* buffer, size_t length) {
  const size_t pending = body_in.size() - body_in_at;
  const size_t n = std::min(pending, length - kChunkFraming);
  const auto head = fmt::format_to_n(buffer, kChunkFraming, "{:x}\r\n", n);
  std::memcpy(head.out, body_in.data() + body_in_at, n);
  std::memcpy(head.out + n, "\r\n", 2);
  body_in_at += n;
  return head.size + n + 2;
}

net::Task<long> Stream::read(char* buffer, size_t length, uint64_t deadline_ms) {
  while (true) {
    if (reset) co_return -ECONNRESET;
    const size_t pending = body_in.size() - body_in_at;
    if (pending && (!chunked_request || length > kChunkFraming)) {
      const size_t before = body_in_at;
      size_t n = 0;
      if (chunked_request) {
        n = chunk_into(buffer, length);
      } else {
        n = std::min(pending, length);
        std::memcpy(buffer, body_in.data() + body_in_at, n);
        body_in_at += n;
      }
      if (body_in_at == body_in.size()) {
        body_in.clear();
        body_in_at = 0;
      }
      // The bytes were read: the client may send as many again.
      nghttp2_session_consume(session.ng, id, body_in_at ? body_in_at - before : n);
      session.wake_writer();
      co_return static_cast<long>(n);
    }
    if (request_ended && pending == 0) {
      if (!chunked_request || last_chunk_sent) co_return 0;
      const std::string last = "0\r\n" + request_trailers + "\r\n";
      if (last.size() > length) co_return -EMSGSIZE;
      last_chunk_sent = true;
      std::memcpy(buffer, last.data(), last.size());
      co_return static_cast<long>(last.size());
    }
    if (co_await signal.wait(deadline_ms) == -ETIMEDOUT) co_return -ETIMEDOUT;
  }
}

net::Task<bool> Stream::write_all(std::string_view a, std::string_view b, uint64_t deadline_ms) {
  for (std::string_view part : {a, b}) {
    if (reset || !take(part)) co_return false;
    while (body.buffered() > kMaxBufferedOut) {
      if (reset) co_return false;
      if (co_await signal.wait(deadline_ms) == -ETIMEDOUT) co_return false;
    }
  }
  co_return !reset;
}

bool Stream::take(std::string_view bytes) {
  while (!bytes.empty()) {
    if (out == Out::kHead && !take_head(bytes)) return false;
    if (out == Out::kBody && !bytes.empty()) {
      const bool taken = take_body(bytes);
      bytes = {};
      if (!taken) return false;
    }
    if (out == Out::kDone) return true;  // nothing may follow a whole response
  }
  return true;
}

// Heads come whole in one write in practice (usher writes each itself), but need not.
bool Stream::take_head(std::string_view& bytes) {
  head_text.append(bytes);
  bytes = {};
  http1::ResponseHead head;
  http1::ParseError error;
  size_t scanned = 0;
  const http1::Method method =
      fields.method() == "HEAD" ? http1::Method::kHead : http1::Method::kGet;
  const http1::ParseStatus status = http1::parse_response(
      head_text, http2::kOwnHeadLimits, session.connection.worker.header_scratch(), method, scanned,
      head, error);
  if (status == http1::ParseStatus::kIncomplete) return true;
  if (status == http1::ParseStatus::kError) return false;
  const std::string rest = head_text.substr(head.head_bytes);
  if (head.status < 200) {
    headers.assign_response(head);
    const auto& nv = headers.entries();
    if (!closed) {
      nghttp2_submit_headers(session.ng, NGHTTP2_FLAG_NONE, id, nullptr, nv.data(), nv.size(),
                             nullptr);
    }
    session.wake_writer();
    head_text = rest;
    return rest.empty() || take_head(bytes);
  }
  if (grpc && client && client->own_response) return answer_grpc(head.status);
  body.start(head.framing);
  submit_response(head, !body.empty_at_start());
  head_text.clear();
  out = body.empty_at_start() ? Out::kDone : Out::kBody;
  if (out == Out::kBody && !rest.empty()) return take_body(rest);
  return true;
}

// usher's own error toward a gRPC client: a trailers-only response with the gRPC status the
// HTTP status stands for, as gRPC's HTTP-to-status mapping has it (a timeout is
// DEADLINE_EXCEEDED), so that the client's library reports it as such, not as a broken call.
bool Stream::answer_grpc(int status) {
  headers.clear();
  headers.add(":status", "200");
  headers.add("content-type", "application/grpc");
  headers.add("grpc-status", std::to_string(grpc_status(status)));
  headers.add("grpc-message", l7::reason_phrase(status));
  answered = true;
  out = Out::kDone;
  if (closed) return true;
  const auto& nv = headers.entries();
  nghttp2_submit_response(session.ng, id, nv.data(), nv.size(), nullptr);
  session.wake_writer();
  return true;
}

void Stream::submit_response(const http1::ResponseHead& head, bool with_body) {
  headers.assign_response(head);
  answered = true;
  if (closed) return;
  const auto& nv = headers.entries();
  nghttp2_data_provider provider;
  provider.source.ptr = this;
  provider.read_callback = read_body;
  nghttp2_submit_response(session.ng, id, nv.data(), nv.size(), with_body ? &provider : nullptr);
  session.wake_writer();
}

bool Stream::take_body(std::string_view bytes) {
  if (!body.feed(bytes)) return false;
  if (body.whole()) out = Out::kDone;
  resume();
  return true;
}

// More of the body (or its end) for a stream whose data nghttp2 was told to wait for.
void Stream::resume() {
  if (body.take_deferred() && !closed) nghttp2_session_resume_data(session.ng, id);
  session.wake_writer();
}

void Stream::finish(bool whole) {
  if (closed) return;
  if (!whole && grpc && answered && out != Out::kDone) {
    // A gRPC call cut after its head ends with a status in trailers, not a reset: past its
    // deadline that is DEADLINE_EXCEEDED, anything else UNAVAILABLE.
    const bool late =
        client_deadline_ms && session.connection.worker.reactor().now_ms() >= client_deadline_ms;
    body.end(late ? "grpc-status: 4\r\ngrpc-message: deadline exceeded\r\n"
                  : "grpc-status: 14\r\ngrpc-message: backend response cut\r\n");
    out = Out::kDone;
    whole = true;
  }
  if (!whole || (out == Out::kBody && !body.until_close()) || out == Out::kHead) {
    // A response cut short, or none at all: the client must not take it for a whole one.
    nghttp2_submit_rst_stream(session.ng, NGHTTP2_FLAG_NONE, id, NGHTTP2_INTERNAL_ERROR);
  } else {
    body.end();  // a body delimited by the backend's close ends with it
    out = Out::kDone;
    resume();
  }
  // A request body the L7 path did not read is taken and dropped: resetting the stream instead
  // could overtake the response's last DATA frames, which nghttp2 sends after control frames.
  if (!request_ended && !closed) {
    discarding = true;
    nghttp2_session_consume(session.ng, id, body_in.size() - body_in_at);
  }
  body_in.clear();
  body_in_at = 0;
  session.wake_writer();
}

ssize_t read_body(nghttp2_session* ng, int32_t id, uint8_t* buffer, size_t length, uint32_t* flags,
                  nghttp2_data_source* source, void*) {
  Stream& s = *static_cast<Stream*>(source->ptr);
  const ssize_t n = s.body.read(ng, id, buffer, length, flags);
  if (n > 0) s.signal.notify();  // room for a waiting writer
  return n;
}

}  // namespace usher::proxy::h2
