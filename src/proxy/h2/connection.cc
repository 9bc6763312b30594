// The loops of one HTTP/2 client connection: a reader feeding nghttp2 and starting a coroutine
// per stream once its request head is whole, and a writer sending what nghttp2 queues. Streams
// start only after the bytes of a whole read were taken, so a stream opened and reset in the
// same read (a rapid reset) never reaches a backend.
#include "proxy/h2/connection.h"

#include <cerrno>
#include <cstring>

#include "proxy/h2/session.h"
#include "proxy/l7/client_io.h"
#include "proxy/l7/http_session.h"
#include "proxy/l7/request_record.h"
#include "proxy/worker.h"

namespace usher::proxy::h2 {

namespace {

// While streams are under way the reader wakes this often to notice a drain.
constexpr uint64_t kDrainCheckMs = 1000;

// The request of a stream whose head cannot be served: answered as the HTTP/1 path answers.
net::Task<void> refuse(l7::Client& c, int status) {
  l7::RequestInfo info;
  co_await l7::send_status(c, status);
  l7::finish_request(c, info);
}

// The translated head goes where the HTTP/1 path reads a request from: the client's buffer.
int place_head(l7::Client& c, Stream& stream) {
  if (stream.header_list_too_large) {
    stream.session.count(ProtocolError::kHeaderListTooLarge);
    return 431;
  }
  std::string head;
  const char* error = nullptr;
  if (!stream.fields.write_head(stream.chunked_request, head, error)) return 400;
  c.in = c.worker.buffers().take();
  if (head.size() > c.in.capacity()) return 431;
  std::memcpy(c.in.data(), head.data(), head.size());
  c.in.commit(head.size());
  return 0;
}

net::Task<void> run_stream(Session& s, Stream& stream) {
  l7::Client& connection = s.connection;
  l7::Client c(connection.worker, -1, connection.endpoint);
  std::memcpy(c.ip_text, connection.ip_text, sizeof c.ip_text);
  c.ip_length = connection.ip_length;
  c.peer = connection.peer;
  c.tls_facts = connection.tls_facts;
  c.channel = &stream;
  c.channel_secure = connection.tls != nullptr;
  c.protocol = "HTTP/2";
  stream.grpc = stream.fields.grpc();
  const int64_t grpc_ms = http2::grpc_timeout_ms(stream.fields.grpc_timeout());
  if (grpc_ms >= 0 && !stream.fields.grpc_timeout().empty()) {
    c.deadline_ms = connection.worker.reactor().now_ms() + static_cast<uint64_t>(grpc_ms);
    stream.client_deadline_ms = c.deadline_ms;
  }
  stream.client = &c;
  bool whole = false;
  if (l7::begin_request(c)) {
    if (const int status = place_head(c, stream)) {
      co_await refuse(c, status);
      whole = true;
    } else {
      whole = co_await l7::serve_request(c) != l7::Next::kAbort;
    }
  }
  c.in.release();
  stream.client = nullptr;
  stream.finish(whole && !c.cancelled);
  stream.running = false;
  --s.running;
  s.release(stream);
  if (s.running == 0) s.all_ended.notify();
}

void start_streams(Session& s) {
  s.streams_started += s.started.size();
  for (Stream* stream : s.started) {
    stream->running = true;
    ++s.running;
    net::spawn(run_stream(s, *stream));
  }
  s.started.clear();
}

struct Loops {
  bool closing = false;  // the reader is done: the writer sends what is left and ends
  bool writer_running = true;
  bool write_failed = false;
};

net::Task<void> write_loop(Session& s, Loops& loops) {
  l7::Client& c = s.connection;
  std::string out;
  while (true) {
    out.clear();
    s.collect_output(out);
    if (out.empty()) {
      if (loops.closing) break;
      if (!s.wants_io()) {
        // The session is over (a GOAWAY for an error went out): the reader must not wait for
        // the client (RFC 9113 section 5.4.1: the connection closes).
        c.worker.reactor().cancel(c.socket);
        break;
      }
      co_await s.writer.wait();
      continue;
    }
    const bool sent =
        co_await c.side().write_all(out, {}, c.after(c.worker.current().config().timeouts.body));
    if (!sent) {
      loops.write_failed = true;
      c.worker.reactor().cancel(c.socket);  // the reader stops too
      break;
    }
  }
  loops.writer_running = false;
  s.all_ended.notify();
}

// Reads until the client closes, the session ends, or the connection idles out; draining, it
// sends GOAWAY and ends once the streams under way have.
net::Task<void> read_loop(Session& s, Loops& loops) {
  l7::Client& c = s.connection;
  bool goaway = false;
  while (true) {
    if (!c.in.empty()) {
      const bool more = s.receive(c.unread());
      c.in.consume(c.in.size());
      start_streams(s);
      s.wake_writer();
      if (!more || loops.write_failed) co_return;
    }
    if (c.worker.draining() && !goaway) {
      goaway = true;
      s.shut_down();
    }
    if (goaway && s.running == 0) co_return;
    if (!s.wants_io()) co_return;
    const auto& timeouts = c.worker.current().config().timeouts;
    const uint64_t now = c.worker.reactor().now_ms();
    const bool idle = s.running == 0;
    // Until its first request a connection has the header timeout, as over HTTP/1: a client
    // that opens one and sends no whole request head is closed as a slow one is.
    const Millis wait = s.streams_started ? timeouts.idle : timeouts.header;
    const uint64_t deadline =
        idle ? now + static_cast<uint64_t>(wait.count()) : now + kDrainCheckMs;
    if (!c.in) c.in = c.worker.buffers().take();
    c.link.idle = idle;
    const long n = co_await l7::read_client(c, c.in.tail(), c.in.tail_room(), deadline);
    c.link.idle = false;
    if (n == -ETIMEDOUT && !idle) continue;
    if (n == -ECANCELED && c.worker.draining() && !loops.write_failed) {
      if (!goaway) {
        goaway = true;
        s.shut_down();
      }
      if (s.running) continue;
    }
    if (n <= 0) co_return;
    c.in.commit(static_cast<size_t>(n));
  }
}

}  // namespace

net::Task<void> serve_http2(l7::Client& c) {
  if (c.endpoint.listener < 0) co_return;  // a reload removed its listener meanwhile
  const ListenerRoutes& routes = c.worker.current().listeners[c.endpoint.listener];
  metrics::ListenerCounters& counters = c.worker.metrics().listeners[routes.metric_id];
  Session s(c, counters, routes.config.http2, c.worker.current().config().limits.max_header_bytes);
  counters.http2_connections.add();
  Loops loops;
  net::spawn(write_loop(s, loops));
  co_await read_loop(s, loops);
  // The client is gone or the session over: streams still under way are reset, their backend
  // requests cancelled, and the connection ends once none uses it.
  for (const auto& stream : s.streams) {
    if (!stream->running || stream->closed) continue;
    stream->closed = stream->reset = true;
    if (l7::Client* client = stream->client) l7::cancel_upstream(*client);
    stream->signal.notify();
  }
  loops.closing = true;
  s.wake_writer();
  while (s.running || loops.writer_running) co_await s.all_ended.wait();
  c.in.release();
}

}  // namespace usher::proxy::h2
