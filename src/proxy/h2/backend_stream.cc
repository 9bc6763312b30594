// One request on an HTTP/2 backend connection, as the L7 path sees a socket: the HTTP/1.1
// request it writes becomes HEADERS, DATA and trailers; the backend's HEADERS, DATA and trailers
// come out of read() as an HTTP/1.1 response (chunked when the backend gave no content-length,
// so that trailers, gRPC's status among them, survive the trip).
#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "codec/http1/head_parser.h"
#include "codec/http2/request_head.h"
#include "proxy/h2/backend_session.h"
#include "proxy/l7/local_response.h"
#include "proxy/worker.h"

namespace usher::proxy::h2 {

namespace {

constexpr size_t kMaxBufferedOut = 64 * 1024;

// Request fields that HTTP/2 carries otherwise or forbids (RFC 9113 section 8.2.2, 8.3.1).
bool dropped(const http1::Header& h) {
  using http1::iequals;
  if (h.connection_listed || http2::connection_specific(h.name)) return true;
  if (iequals(h.name, "te")) return !iequals(h.value, "trailers");
  return iequals(h.name, "host") || iequals(h.name, "expect") || iequals(h.name, "http2-settings");
}

}  // namespace

BackendStream::BackendStream(BackendSession& s) : session(&s), signal(s.worker.reactor()) {
  s.streams.push_back(this);
}

BackendStream::~BackendStream() {
  if (!session) return;
  BackendSession& s = *session;
  if (id > 0 && !closed) {
    nghttp2_session_set_stream_user_data(s.ng, id, nullptr);
    nghttp2_submit_rst_stream(s.ng, NGHTTP2_FLAG_NONE, id, NGHTTP2_CANCEL);
    nghttp2_session_consume_connection(s.ng, unconsumed);
    s.wake_writer();
  }
  std::erase(s.streams, this);
  if (s.draining && s.streams.empty()) s.end();
}

void BackendStream::cancel() {
  failed = true;
  if (session && id > 0 && !closed) {
    nghttp2_submit_rst_stream(session->ng, NGHTTP2_FLAG_NONE, id, NGHTTP2_CANCEL);
    session->wake_writer();
  }
  signal.notify();
}

net::Task<long> BackendStream::read(char* buffer, size_t length, uint64_t deadline_ms) {
  while (true) {
    const size_t pending = response.size() - response_at;
    if (pending) {
      const size_t n = std::min(pending, length);
      std::memcpy(buffer, response.data() + response_at, n);
      response_at += n;
      if (response_at == response.size()) {
        response.clear();
        response_at = 0;
      }
      // The window opens as the L7 path takes the response (a slow client slows the backend).
      const size_t data = std::min(unconsumed, n);
      unconsumed -= data;
      if (data && session && !session->ended) {
        if (closed) {
          nghttp2_session_consume_connection(session->ng, data);
        } else {
          nghttp2_session_consume(session->ng, id, data);
        }
        session->wake_writer();
      }
      co_return static_cast<long>(n);
    }
    if (ended) co_return 0;
    if (failed || !session) co_return refused ? -ECONNREFUSED : -ECONNRESET;
    if (co_await signal.wait(deadline_ms) == -ETIMEDOUT) co_return -ETIMEDOUT;
  }
}

net::Task<bool> BackendStream::write_all(std::string_view a, std::string_view b,
                                         uint64_t deadline_ms) {
  for (std::string_view part : {a, b}) {
    if (failed || !session || !take(part)) co_return false;
    while (body.buffered() > kMaxBufferedOut) {
      if (failed || !session) co_return false;
      if (co_await signal.wait(deadline_ms) == -ETIMEDOUT) co_return false;
    }
  }
  co_return !failed && session;
}

bool BackendStream::take(std::string_view bytes) {
  if (!head_done) {
    head_text.append(bytes);
    const size_t end = head_text.find("\r\n\r\n");
    if (end == std::string::npos) return true;
    head_done = true;
    const std::string rest = head_text.substr(end + 4);
    if (!submit(std::string_view(head_text).substr(0, end + 4))) return false;
    head_text.clear();
    bytes = rest;
    if (bytes.empty()) return true;
    return take(rest);
  }
  if (!bytes.empty()) body_taken = true;
  if (!body.feed(bytes)) return false;
  if (body.take_deferred() && session && id > 0 && !closed) {
    nghttp2_session_resume_data(session->ng, id);
  }
  session->wake_writer();
  return true;
}

// The L7 path's request head (its own writing, so well formed) as an HTTP/2 request.
bool BackendStream::submit(std::string_view head_bytes) {
  BackendSession& s = *session;
  http1::RequestHead head;
  http1::ParseError error;
  size_t scanned = 0;
  if (http1::parse_request(head_bytes, http2::kOwnHeadLimits, s.worker.header_scratch(), scanned,
                           head, error) != http1::ParseStatus::kComplete) {
    return false;
  }
  http2::HeaderList list;
  list.add(":method", head.method_text);
  list.add(":scheme", s.secure ? "https" : "http");
  for (const http1::Header& h : head.headers) {
    if (h.id == http1::HeaderId::kHost) list.add(":authority", h.value);
  }
  list.add(":path", head.target);
  bool grpc = false;
  for (const http1::Header& h : head.headers) {
    if (!dropped(h)) list.add(h.name, h.value);
    grpc = grpc || (http1::iequals(h.name, "content-type") && http2::grpc_content_type(h.value));
  }
  // TE is hop-by-hop, so the HTTP/1 path dropped the client's; gRPC servers insist on it.
  if (grpc) list.add("te", "trailers");
  body.start(head.framing);
  nghttp2_data_provider provider;
  provider.source.ptr = nullptr;
  provider.read_callback = read_request_body;
  const auto& nv = list.entries();
  id = nghttp2_submit_request(s.ng, nullptr, nv.data(), nv.size(),
                              body.empty_at_start() ? nullptr : &provider, this);
  s.wake_writer();
  return id > 0;
}

void BackendStream::on_headers_begin(bool trailers) {
  in_trailers = trailers;
  fields.clear();
  if (!trailers) status.clear();
}

void BackendStream::on_header(std::string_view name, std::string_view value) {
  if (name == ":status") {
    status = value;
    return;
  }
  if (!name.empty() && name[0] == ':') return;
  if (name == "content-length") has_length = true;
  fields.append(name).append(": ").append(value).append("\r\n");
}

void BackendStream::on_headers_end(bool end_stream) {
  if (in_trailers) {
    if (response_chunked) response.append("0\r\n").append(fields).append("\r\n");
    fields.clear();
    ended = true;
  } else if (!status.empty()) {
    const int code = std::atoi(status.c_str());
    response.append(fmt::format("HTTP/1.1 {} {}\r\n", status, l7::reason_phrase(code)));
    response.append(fields);
    fields.clear();
    if (code < 200) {
      response.append("\r\n");
      status.clear();
    } else if (end_stream) {
      if (!has_length && code != 204 && code != 304) response.append("content-length: 0\r\n");
      response.append("\r\n");
      ended = true;
    } else {
      response_chunked = !has_length;
      response.append(response_chunked ? "transfer-encoding: chunked\r\n\r\n" : "\r\n");
      status = "0";  // a head came: the next HEADERS are trailers
    }
  }
  signal.notify();
}

void BackendStream::on_end() {
  if (ended) return;
  if (response_chunked) response.append("0\r\n\r\n");
  ended = true;
  signal.notify();
}

void BackendStream::on_data(std::string_view data) {
  if (data.empty()) return;
  unconsumed += data.size();
  if (response_chunked) {
    response.append(fmt::format("{:x}\r\n", data.size())).append(data).append("\r\n");
  } else {
    response.append(data);
  }
  signal.notify();
}

void BackendStream::on_close(bool was_refused) {
  closed = true;
  if (!ended) {
    failed = true;
    refused = was_refused && !body_taken;
  }
  signal.notify();
}

ssize_t read_request_body(nghttp2_session* ng, int32_t id, uint8_t* buffer, size_t length,
                          uint32_t* flags, nghttp2_data_source*, void*) {
  auto* s = static_cast<BackendStream*>(nghttp2_session_get_stream_user_data(ng, id));
  if (!s) return NGHTTP2_ERR_DEFERRED;  // given up: its reset is on the way
  const ssize_t n = s->body.read(ng, id, buffer, length, flags);
  if (n > 0) s->signal.notify();  // room for a waiting writer
  return n;
}

}  // namespace usher::proxy::h2
