#pragma once
// Internal to the HTTP/2 room: one client connection's nghttp2 session and its streams. The
// session is driven by bytes (nghttp2's mem_recv and mem_send): the connection's loops do all I/O,
// so nothing here waits on a socket. Worker thread only.
#include <nghttp2/nghttp2.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "codec/http2/glitches.h"
#include "codec/http2/header_list.h"
#include "codec/http2/outgoing_body.h"
#include "codec/http2/request_head.h"
#include "config/config.h"
#include "metrics/counters.h"
#include "net/signal.h"
#include "proxy/l7/session.h"
#include "proxy/l7/stream.h"

namespace usher::proxy::h2 {

class Session;

using ProtocolError = metrics::Http2Error;

// The gRPC status code for an HTTP status of usher's own.
int grpc_status(int http_status);

// One client stream: its request as it arrives, and its response as the L7 path writes it.
class Stream final : public l7::MessageChannel {
 public:
  Stream(Session& session, int32_t id);

  net::Task<long> read(char* buffer, size_t length, uint64_t deadline_ms) override;
  net::Task<bool> write_all(std::string_view a, std::string_view b, uint64_t deadline_ms) override;

  // The L7 path is done with the stream: the response ends (or is cut when `whole` is false).
  void finish(bool whole);

  Session& session;
  const int32_t id;
  http2::RequestFields fields;
  uint32_t header_list_bytes = 0;
  bool header_list_too_large = false;
  bool request_ended = false;  // END_STREAM came
  bool chunked_request = false;
  bool last_chunk_sent = false;
  bool discarding = false;       // the response is done: request DATA is dropped as it comes
  std::string request_trailers;  // as "name: value\r\n" lines
  std::string body_in;           // received DATA not yet read by the L7 path
  size_t body_in_at = 0;

  // The response, parsed back from the HTTP/1.1 bytes the L7 path writes.
  enum class Out : uint8_t { kHead, kBody, kDone };
  Out out = Out::kHead;
  std::string head_text;
  http2::OutgoingBody body;
  http2::HeaderList headers;
  bool answered = false;  // a final response's HEADERS were submitted

  bool closed = false;   // nghttp2 closed it: no frame may name it any more
  bool reset = false;    // closed before its response ended
  bool running = false;  // its coroutine still uses it
  bool grpc = false;
  uint64_t client_deadline_ms = 0;  // from grpc-timeout
  l7::Client* client = nullptr;     // while its request is served
  net::Signal signal;               // its coroutine waits here for data, room or a reset

 private:
  bool take(std::string_view bytes);
  bool take_head(std::string_view& bytes);
  bool take_body(std::string_view bytes);
  void resume();
  void submit_response(const http1::ResponseHead& head, bool with_body);
  bool answer_grpc(int status);
  size_t chunk_into(char* buffer, size_t length);
};

// The nghttp2 session of one client connection, and the streams it carries.
class Session {
 public:
  // `counters`: the listener's, which stay where they are for the life of the process.
  Session(l7::Client& connection, metrics::ListenerCounters& counters, const config::Http2& limits,
          size_t max_header_bytes);
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;
  ~Session();

  // Feeds bytes from the client; false when the connection must end (after what is queued is
  // sent). Streams whose request head completed are queued in `started`.
  bool receive(std::string_view bytes);
  // The frames to send now, appended to out.
  void collect_output(std::string& out);
  bool wants_io() const;
  // Stops taking new streams (GOAWAY with the last stream id), lets those under way finish.
  void shut_down();
  void terminate(ProtocolError why, uint32_t code);
  void count(ProtocolError error);

  // The writer's wake: something was queued for the client.
  void wake_writer() { writer.notify(); }
  // A stream's coroutine ended, or nghttp2 closed it: the last of the two frees it.
  void release(Stream& stream);

  l7::Client& connection;
  metrics::ListenerCounters& counters;
  nghttp2_session* ng = nullptr;
  net::Signal writer;
  net::Signal all_ended;  // notified when the last stream coroutine ends
  std::vector<Stream*> started;
  std::vector<std::unique_ptr<Stream>> streams;
  uint32_t running = 0;  // stream coroutines alive
  uint64_t streams_started = 0;
  http2::GlitchScore glitches;
  uint32_t max_header_list;
  uint32_t reset_burst;
  uint64_t resets_received = 0;
  bool terminated = false;
  bool error_counted = false;
  int32_t highest_stream = 0;  // the highest stream the client opened
  // Streams usher reset lately: frames the client sent on them before it knew are ignored
  // (RFC 9113 section 5.4.2), not errors.
  int32_t reset_streams[16] = {};
  uint32_t reset_at = 0;

 private:
  static int on_begin_frame(nghttp2_session*, const nghttp2_frame_hd*, void*);
  static int on_begin_headers(nghttp2_session*, const nghttp2_frame*, void*);
  static int on_header(nghttp2_session*, const nghttp2_frame*, const uint8_t*, size_t,
                       const uint8_t*, size_t, uint8_t, void*);
  static int on_frame_recv(nghttp2_session*, const nghttp2_frame*, void*);
  static int on_data_chunk(nghttp2_session*, uint8_t, int32_t, const uint8_t*, size_t, void*);
  static int on_stream_close(nghttp2_session*, int32_t, uint32_t, void*);
  static int on_frame_send(nghttp2_session*, const nghttp2_frame*, void*);
  void glitch(http2::Glitch kind);
  ProtocolError goaway_reason(const nghttp2_goaway& goaway) const;
  void stream_closed(Stream& stream, uint32_t code);
};

// The data provider of a response body: reads from the stream's body.
ssize_t read_body(nghttp2_session*, int32_t, uint8_t* buffer, size_t length, uint32_t* flags,
                  nghttp2_data_source* source, void*);

}  // namespace usher::proxy::h2
