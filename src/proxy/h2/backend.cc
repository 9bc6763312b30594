// Connections to HTTP/2 backends: choosing one with room, opening them, and each one's loops (a
// reader feeding nghttp2, a writer sending what it queues). A connection closes after
// kIdleCloseMs without streams, when the worker drains, or when the backend says GOAWAY.
#include "proxy/h2/backend.h"

#include <algorithm>

#include "proxy/h2/backend_session.h"
#include "proxy/l7/failure.h"
#include "proxy/l7/session.h"
#include "proxy/l7/upstream_io.h"
#include "proxy/pool_state.h"
#include "proxy/worker.h"

namespace usher::proxy::h2 {

namespace {

constexpr uint64_t kIdleCloseMs = 60'000;
constexpr uint64_t kTickMs = 1000;
constexpr uint64_t kWriteTimeoutMs = 30'000;

BackendSession& of(void* user_data) {
  return *static_cast<BackendSession*>(user_data);
}

BackendStream* stream_of(nghttp2_session* ng, int32_t id) {
  return static_cast<BackendStream*>(nghttp2_session_get_stream_user_data(ng, id));
}

}  // namespace

BackendSession::BackendSession(Worker& w, std::unique_ptr<l7::UpstreamConn> conn, bool tls,
                               uint32_t id)
    : worker(w), connection(std::move(conn)), secure(tls), backend_id(id), writer(w.reactor()) {
  nghttp2_session_callbacks* callbacks = nullptr;
  nghttp2_session_callbacks_new(&callbacks);
  nghttp2_session_callbacks_set_on_begin_headers_callback(callbacks, on_begin_headers);
  nghttp2_session_callbacks_set_on_header_callback(callbacks, on_header);
  nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks, on_frame_recv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks, on_data_chunk);
  nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, on_stream_close);
  nghttp2_option* option = nullptr;
  nghttp2_option_new(&option);
  // The backend's window opens as the L7 path relays the response: a slow client slows the
  // backend instead of growing usher's buffers.
  nghttp2_option_set_no_auto_window_update(option, 1);
  // Until the backend's SETTINGS say how many streams it takes, one: a second stream sent
  // before then may be one too many.
  nghttp2_option_set_peer_max_concurrent_streams(option, 1);
  nghttp2_session_client_new2(&ng, callbacks, this, option);
  nghttp2_option_del(option);
  nghttp2_session_callbacks_del(callbacks);
  const nghttp2_settings_entry settings[] = {
      {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 256 * 1024},
  };
  nghttp2_submit_settings(ng, NGHTTP2_FLAG_NONE, settings, std::size(settings));
  nghttp2_submit_window_update(ng, NGHTTP2_FLAG_NONE, 0, 1024 * 1024 - 65535);
}

BackendSession::~BackendSession() {
  nghttp2_session_del(ng);
}

void BackendSession::start() {
  loops = 2;
  net::spawn(read_loop());
  net::spawn(write_loop());
}

bool BackendSession::has_room() const {
  return alive() && streams.size() < nghttp2_session_get_remote_settings(
                                         ng, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
}

void BackendSession::end() {
  if (ended) return;
  ended = true;
  for (BackendStream* stream : streams) {
    if (stream->ended || stream->failed) continue;
    stream->failed = true;
    stream->refused = stream->id < 0;  // never sent
    stream->signal.notify();
  }
  worker.reactor().cancel(connection->socket);
  wake_writer();
}

net::Task<void> BackendSession::read_loop() {
  net::Buffer in = worker.buffers().take();
  l7::Side side{connection->socket, connection->tls.get()};
  uint64_t idle_since = worker.reactor().now_ms();
  while (!ended) {
    const uint64_t now = worker.reactor().now_ms();
    const long n =
        co_await side.read(in.data(), in.capacity(), streams.empty() ? now + kTickMs : 0);
    if (n == -ETIMEDOUT) {
      if (!streams.empty()) idle_since = now;
      if (worker.draining() || draining || now - idle_since >= kIdleCloseMs) break;
      continue;
    }
    if (n <= 0) break;
    idle_since = now;
    const auto* data = reinterpret_cast<const uint8_t*>(in.data());
    if (nghttp2_session_mem_recv(ng, data, static_cast<size_t>(n)) < 0) break;
    wake_writer();
    if (!nghttp2_session_want_read(ng) && !nghttp2_session_want_write(ng)) break;
  }
  in.release();
  end();
  --loops;
}

net::Task<void> BackendSession::write_loop() {
  l7::Side side{connection->socket, connection->tls.get()};
  std::string out;
  while (true) {
    out.clear();
    while (out.size() < 64 * 1024) {
      const uint8_t* data = nullptr;
      const ssize_t n = nghttp2_session_mem_send(ng, &data);
      if (n <= 0) break;
      out.append(reinterpret_cast<const char*>(data), static_cast<size_t>(n));
    }
    if (out.empty()) {
      if (ended) break;
      co_await writer.wait();
      continue;
    }
    if (!co_await side.write_all(out, {}, worker.reactor().now_ms() + kWriteTimeoutMs)) {
      end();
      break;
    }
  }
  --loops;
}

int BackendSession::on_begin_headers(nghttp2_session* ng, const nghttp2_frame* frame, void*) {
  if (BackendStream* stream = stream_of(ng, frame->hd.stream_id)) {
    stream->on_headers_begin(frame->headers.cat == NGHTTP2_HCAT_HEADERS &&
                             !stream->status.empty() && stream->status[0] != '1');
  }
  return 0;
}

int BackendSession::on_header(nghttp2_session* ng, const nghttp2_frame* frame, const uint8_t* name,
                              size_t name_length, const uint8_t* value, size_t value_length,
                              uint8_t, void*) {
  if (BackendStream* stream = stream_of(ng, frame->hd.stream_id)) {
    stream->on_header({reinterpret_cast<const char*>(name), name_length},
                      {reinterpret_cast<const char*>(value), value_length});
  }
  return 0;
}

int BackendSession::on_frame_recv(nghttp2_session* ng, const nghttp2_frame* frame, void* user) {
  const bool ends = frame->hd.flags & NGHTTP2_FLAG_END_STREAM;
  if (frame->hd.type == NGHTTP2_GOAWAY) {
    of(user).goaway = true;  // streams past its last id are closed as refused by nghttp2
    return 0;
  }
  BackendStream* stream = stream_of(ng, frame->hd.stream_id);
  if (!stream) return 0;
  if (frame->hd.type == NGHTTP2_HEADERS) stream->on_headers_end(ends);
  if (frame->hd.type == NGHTTP2_DATA && ends) stream->on_end();
  return 0;
}

int BackendSession::on_data_chunk(nghttp2_session* ng, uint8_t, int32_t id, const uint8_t* data,
                                  size_t length, void*) {
  BackendStream* stream = stream_of(ng, id);
  if (!stream) {
    nghttp2_session_consume(ng, id, length);  // a stream given up: its DATA is dropped
    return 0;
  }
  stream->on_data({reinterpret_cast<const char*>(data), length});
  return 0;
}

int BackendSession::on_stream_close(nghttp2_session* ng, int32_t id, uint32_t code, void*) {
  if (BackendStream* stream = stream_of(ng, id)) {
    stream->on_close(code == NGHTTP2_REFUSED_STREAM);
  }
  return 0;
}

BackendSessions::BackendSessions(Worker& worker) : worker_(worker) {}

BackendSessions::~BackendSessions() = default;

BackendSession* BackendSessions::with_room(uint32_t backend_id, uint32_t max_connections) {
  auto& list = by_backend_[backend_id];
  BackendSession* least = nullptr;
  size_t alive = opening_[backend_id];
  for (const auto& session : list) {
    if (!session->alive()) continue;
    ++alive;
    if (session->has_room()) return session.get();
    if (!least || session->streams.size() < least->streams.size()) least = session.get();
  }
  // All full: a new connection while the cap allows, else the least loaded (nghttp2 holds the
  // stream until the backend's limit lets it go).
  return alive < max_connections ? nullptr : least;
}

net::Task<std::unique_ptr<l7::UpstreamConn>> BackendSessions::open_stream(
    l7::Client& c, PoolState& pool, uint32_t index, Millis timeout, l7::Failure& failure) {
  sweep();
  const uint32_t backend_id = pool.backend_id(index);
  if (by_backend_.size() <= backend_id) {
    by_backend_.resize(backend_id + 1);
    opening_.resize(backend_id + 1);
  }
  BackendSession* session = with_room(backend_id, pool.config.h2_connections);
  // Every connection the cap allows is still being opened: wait for one (bounded by the
  // connect timeout), instead of opening more.
  const uint64_t give_up = worker_.reactor().now_ms() + static_cast<uint64_t>(timeout.count());
  while (!session && opening_[backend_id] >= pool.config.h2_connections) {
    if (worker_.reactor().now_ms() >= give_up) {
      failure = l7::Failure::upstream(l7::Failure::Cause::kConnect, 504, false);
      co_return nullptr;
    }
    co_await net::sleep_until(worker_.reactor(), worker_.reactor().now_ms() + 1);
    session = with_room(backend_id, pool.config.h2_connections);
  }
  if (!session) {
    ++opening_[backend_id];
    std::unique_ptr<l7::UpstreamConn> conn =
        co_await l7::open_upstream(c, pool, index, timeout, failure);
    --opening_[backend_id];
    if (!conn) co_return nullptr;
    const bool secure = conn->tls != nullptr;
    if (secure && conn->tls->alpn() != "h2") {
      failure = l7::Failure::upstream(l7::Failure::Cause::kConnect, 502, false);
      co_return nullptr;  // the backend does not speak HTTP/2 over TLS
    }
    auto& list = by_backend_[backend_id];  // open_upstream waited: the vector may have grown
    list.push_back(std::make_unique<BackendSession>(worker_, std::move(conn), secure, backend_id));
    session = list.back().get();
    session->start();
  }
  auto up = std::make_unique<l7::UpstreamConn>(worker_.reactor(), -1, backend_id);
  up->channel = std::make_unique<BackendStream>(*session);
  co_return up;
}

void BackendSessions::close_idle() {
  for (auto& list : by_backend_) {
    for (auto& session : list) {
      session->draining = true;
      if (session->streams.empty()) session->end();
    }
  }
}

void BackendSessions::sweep() {
  for (auto& list : by_backend_) {
    std::erase_if(list, [](const std::unique_ptr<BackendSession>& s) { return s->freeable(); });
  }
}

}  // namespace usher::proxy::h2
