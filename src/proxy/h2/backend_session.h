#pragma once
// Internal to the HTTP/2 room: one connection to a backend (nghttp2 client session) and the
// streams the L7 path opened on it. Worker thread only.
#include <nghttp2/nghttp2.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "codec/http2/header_list.h"
#include "codec/http2/outgoing_body.h"
#include "net/signal.h"
#include "proxy/l7/stream.h"
#include "proxy/l7/upstream_pool.h"

namespace usher::proxy {
class Worker;
}

namespace usher::proxy::h2 {

class BackendSession;

// One request to the backend: HTTP/1.1 written in, HTTP/1.1 read out.
class BackendStream final : public l7::MessageChannel {
 public:
  explicit BackendStream(BackendSession& session);
  ~BackendStream() override;

  net::Task<long> read(char* buffer, size_t length, uint64_t deadline_ms) override;
  net::Task<bool> write_all(std::string_view a, std::string_view b, uint64_t deadline_ms) override;
  void cancel() override;

  // From the session's callbacks.
  void on_headers_begin(bool trailers);
  void on_header(std::string_view name, std::string_view value);
  void on_headers_end(bool end_stream);
  void on_data(std::string_view data);
  void on_end();  // END_STREAM on a DATA frame
  void on_close(bool refused);

  BackendSession* session;  // null once the session is gone
  int32_t id = -1;          // once submitted

  // The request, parsed from the L7 path's HTTP/1.1 bytes.
  std::string head_text;
  bool head_done = false;
  http2::OutgoingBody body;
  bool body_taken = false;  // request body bytes went to nghttp2: the request cannot be replayed

  // The response, as HTTP/1.1 text for the L7 path.
  std::string response;
  size_t response_at = 0;
  bool response_chunked = false;
  bool in_trailers = false;
  std::string status;
  std::string fields;  // "name: value\r\n" lines of the head being received
  bool has_length = false;
  bool ended = false;     // the response is whole
  bool closed = false;    // nghttp2 closed the stream
  bool failed = false;    // reset, or the connection ended first
  bool refused = false;   // the backend never processed it (REFUSED_STREAM, beyond a GOAWAY)
  size_t unconsumed = 0;  // response DATA bytes the L7 path has not read
  net::Signal signal;

 private:
  bool take(std::string_view bytes);
  bool submit(std::string_view head_bytes);
};

class BackendSession {
 public:
  BackendSession(Worker& worker, std::unique_ptr<l7::UpstreamConn> connection, bool secure,
                 uint32_t backend_id);
  BackendSession(const BackendSession&) = delete;
  BackendSession& operator=(const BackendSession&) = delete;
  ~BackendSession();

  void start();
  bool has_room() const;
  bool alive() const { return !ended && !goaway; }
  bool freeable() const { return ended && loops == 0 && streams.empty(); }
  void wake_writer() { writer.notify(); }
  // Ends the connection: its streams fail (those never processed as refused).
  void end();

  Worker& worker;
  std::unique_ptr<l7::UpstreamConn> connection;
  const bool secure;
  const uint32_t backend_id;
  nghttp2_session* ng = nullptr;
  net::Signal writer;
  std::vector<BackendStream*> streams;
  uint32_t loops = 0;
  bool ended = false;
  bool goaway = false;  // the backend takes no new streams
  bool draining = false;

 private:
  static int on_begin_headers(nghttp2_session*, const nghttp2_frame*, void*);
  static int on_header(nghttp2_session*, const nghttp2_frame*, const uint8_t*, size_t,
                       const uint8_t*, size_t, uint8_t, void*);
  static int on_frame_recv(nghttp2_session*, const nghttp2_frame*, void*);
  static int on_data_chunk(nghttp2_session*, uint8_t, int32_t, const uint8_t*, size_t, void*);
  static int on_stream_close(nghttp2_session*, int32_t, uint32_t, void*);
  net::Task<void> read_loop();
  net::Task<void> write_loop();
};

ssize_t read_request_body(nghttp2_session*, int32_t, uint8_t* buffer, size_t length,
                          uint32_t* flags, nghttp2_data_source* source, void*);

}  // namespace usher::proxy::h2
