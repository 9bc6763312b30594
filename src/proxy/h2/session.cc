// The nghttp2 server session of one client connection: its options (the defences), the
// callbacks that turn frames into streams, and the glitch score that ends floods.
#include "proxy/h2/session.h"

#include <algorithm>

#include "proxy/worker.h"

namespace usher::proxy::h2 {

namespace {

Session& of(void* user_data) {
  return *static_cast<Session*>(user_data);
}

Stream* stream_of(nghttp2_session* ng, int32_t id) {
  return static_cast<Stream*>(nghttp2_session_get_stream_user_data(ng, id));
}

ProtocolError error_of_code(uint32_t code) {
  switch (code) {
    case NGHTTP2_COMPRESSION_ERROR:
      return ProtocolError::kCompression;
    case NGHTTP2_FLOW_CONTROL_ERROR:
      return ProtocolError::kFlowControl;
    case NGHTTP2_FRAME_SIZE_ERROR:
      return ProtocolError::kFrameSize;
    case NGHTTP2_ENHANCE_YOUR_CALM:
      return ProtocolError::kRapidReset;  // nghttp2's reset limit
    default:
      return ProtocolError::kProtocol;
  }
}

ProtocolError error_of_glitch(http2::Glitch glitch) {
  switch (glitch) {
    case http2::Glitch::kResetUnanswered:
      return ProtocolError::kRapidReset;
    case http2::Glitch::kEmptyData:
      return ProtocolError::kEmptyDataFlood;
    case http2::Glitch::kSettings:
      return ProtocolError::kSettingsFlood;
    case http2::Glitch::kPing:
      return ProtocolError::kPingFlood;
    case http2::Glitch::kPriority:
      return ProtocolError::kPriorityFlood;
  }
  return ProtocolError::kProtocol;
}

// The HPACK-accounted size of a field (RFC 9113 section 6.5.2: name, value and 32 bytes).
uint32_t field_size(size_t name, size_t value) {
  return static_cast<uint32_t>(name + value + 32);
}

}  // namespace

Session::Session(l7::Client& c, metrics::ListenerCounters& listener_counters,
                 const config::Http2& limits, size_t max_header_bytes)
    : connection(c),
      counters(listener_counters),
      writer(c.worker.reactor()),
      all_ended(c.worker.reactor()),
      glitches(limits.glitch_limit, limits.glitch_drain_per_second),
      max_header_list(limits.max_header_list ? limits.max_header_list
                                             : static_cast<uint32_t>(max_header_bytes)),
      reset_burst(limits.reset_burst) {
  nghttp2_session_callbacks* callbacks = nullptr;
  nghttp2_session_callbacks_new(&callbacks);
  nghttp2_session_callbacks_set_on_begin_frame_callback(callbacks, on_begin_frame);
  nghttp2_session_callbacks_set_on_begin_headers_callback(callbacks, on_begin_headers);
  nghttp2_session_callbacks_set_on_header_callback(callbacks, on_header);
  nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks, on_frame_recv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks, on_data_chunk);
  nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, on_stream_close);
  nghttp2_session_callbacks_set_on_frame_send_callback(callbacks, on_frame_send);
  nghttp2_option* option = nullptr;
  nghttp2_option_new(&option);
  // Windows open as the L7 path reads the body, not as bytes arrive: a slow backend shrinks
  // the client's window instead of growing usher's buffers.
  nghttp2_option_set_no_auto_window_update(option, 1);
  nghttp2_option_set_max_continuations(option, limits.max_continuations);
  nghttp2_option_set_stream_reset_rate_limit(option, limits.reset_burst, limits.reset_per_second);
  nghttp2_option_set_max_settings(option, 32);
  // The glitch score, not nghttp2's queue of unsent acknowledgements, ends a SETTINGS or PING
  // flood: one read holds up to about two thousand such frames, and nghttp2's default of 1000
  // queued ACKs would end the connection without a GOAWAY first.
  nghttp2_option_set_max_outbound_ack(option, 10 * limits.glitch_limit + 1000);
  nghttp2_session_server_new2(&ng, callbacks, this, option);
  nghttp2_option_del(option);
  nghttp2_session_callbacks_del(callbacks);
  const nghttp2_settings_entry settings[] = {
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, limits.max_concurrent_streams},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, limits.stream_window},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, max_header_list},
      {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
  };
  nghttp2_submit_settings(ng, NGHTTP2_FLAG_NONE, settings, std::size(settings));
  const int32_t grow = static_cast<int32_t>(limits.connection_window) - 65535;
  if (grow > 0) nghttp2_submit_window_update(ng, NGHTTP2_FLAG_NONE, 0, grow);
}

Session::~Session() {
  nghttp2_session_del(ng);
}

void Session::count(ProtocolError error) {
  counters.http2_errors[static_cast<size_t>(error)].add();
}

void Session::terminate(ProtocolError why, uint32_t code) {
  if (terminated) return;
  terminated = true;
  if (!error_counted) count(why);
  error_counted = true;
  nghttp2_session_terminate_session(ng, code);
}

bool Session::receive(std::string_view bytes) {
  const auto* data = reinterpret_cast<const uint8_t*>(bytes.data());
  const ssize_t n = nghttp2_session_mem_recv(ng, data, bytes.size());
  if (n >= 0) return !terminated;
  switch (n) {
    case NGHTTP2_ERR_BAD_CLIENT_MAGIC:
      count(ProtocolError::kPreface);
      break;
    case NGHTTP2_ERR_FLOODED:
      count(ProtocolError::kAckFlood);
      break;
    case NGHTTP2_ERR_TOO_MANY_CONTINUATIONS:
      count(ProtocolError::kContinuationFlood);
      break;
    case NGHTTP2_ERR_TOO_MANY_SETTINGS:
      count(ProtocolError::kSettingsFlood);
      break;
    default:
      count(ProtocolError::kProtocol);
      break;
  }
  error_counted = true;
  if (n == NGHTTP2_ERR_TOO_MANY_CONTINUATIONS || n == NGHTTP2_ERR_TOO_MANY_SETTINGS) {
    nghttp2_session_terminate_session(ng, NGHTTP2_ENHANCE_YOUR_CALM);
  }
  terminated = true;
  return false;
}

void Session::collect_output(std::string& out) {
  while (true) {
    const uint8_t* data = nullptr;
    const ssize_t n = nghttp2_session_mem_send(ng, &data);
    if (n <= 0) return;
    out.append(reinterpret_cast<const char*>(data), static_cast<size_t>(n));
    if (out.size() >= 64 * 1024) return;
  }
}

bool Session::wants_io() const {
  return nghttp2_session_want_read(ng) || nghttp2_session_want_write(ng);
}

void Session::shut_down() {
  nghttp2_submit_goaway(ng, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(ng),
                        NGHTTP2_NO_ERROR, nullptr, 0);
  wake_writer();
}

// Why nghttp2 itself ended the session: its reset limit answers INTERNAL_ERROR, and a stream
// beyond max_concurrent_streams (once the client has acknowledged it) PROTOCOL_ERROR; the
// GOAWAY's debug text tells the latter.
ProtocolError Session::goaway_reason(const nghttp2_goaway& goaway) const {
  const std::string_view text(reinterpret_cast<const char*>(goaway.opaque_data),
                              goaway.opaque_data_len);
  if (goaway.error_code == NGHTTP2_INTERNAL_ERROR && resets_received >= reset_burst) {
    return ProtocolError::kRapidReset;
  }
  if (text.find("max concurrent streams") != std::string_view::npos) {
    return ProtocolError::kTooManyStreams;
  }
  return error_of_code(goaway.error_code);
}

void Session::glitch(http2::Glitch kind) {
  if (glitches.add(kind, connection.worker.reactor().now_ms())) {
    terminate(error_of_glitch(kind), NGHTTP2_ENHANCE_YOUR_CALM);
  }
}

void Session::release(Stream& stream) {
  if (stream.running || !stream.closed) return;
  const auto it =
      std::find_if(streams.begin(), streams.end(),
                   [&](const std::unique_ptr<Stream>& s) { return s.get() == &stream; });
  if (it == streams.end()) return;
  std::swap(*it, streams.back());
  streams.pop_back();
}

// A HEADERS frame on a lower stream than one the client opened, which it never opened (or usher
// has forgotten), is a connection error (RFC 9113 section 5.1.1); nghttp2 drops it silently.
int Session::on_begin_frame(nghttp2_session* ng, const nghttp2_frame_hd* hd, void* user) {
  Session& s = of(user);
  const int32_t id = hd->stream_id;
  if (hd->type != NGHTTP2_HEADERS || (id & 1) == 0 || id >= s.highest_stream) return 0;
  if (nghttp2_session_find_stream(ng, id) != nullptr) return 0;
  if (std::find(std::begin(s.reset_streams), std::end(s.reset_streams), id) !=
      std::end(s.reset_streams)) {
    return 0;
  }
  s.terminate(ProtocolError::kProtocol, NGHTTP2_PROTOCOL_ERROR);
  return 0;
}

int Session::on_begin_headers(nghttp2_session* ng, const nghttp2_frame* frame, void* user) {
  Session& s = of(user);
  if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
  s.highest_stream = std::max(s.highest_stream, frame->hd.stream_id);
  s.streams.push_back(std::make_unique<Stream>(s, frame->hd.stream_id));
  nghttp2_session_set_stream_user_data(ng, frame->hd.stream_id, s.streams.back().get());
  return 0;
}

int Session::on_header(nghttp2_session* ng, const nghttp2_frame* frame, const uint8_t* name,
                       size_t name_length, const uint8_t* value, size_t value_length, uint8_t,
                       void* user) {
  Session& s = of(user);
  Stream* stream = stream_of(ng, frame->hd.stream_id);
  if (!stream || frame->hd.type != NGHTTP2_HEADERS) return 0;
  const std::string_view n(reinterpret_cast<const char*>(name), name_length);
  const std::string_view v(reinterpret_cast<const char*>(value), value_length);
  // However many CONTINUATION frames carry it, a header list past the limit is not kept:
  // decoding goes on (the HPACK state is the connection's), the request is answered 431.
  stream->header_list_bytes += field_size(name_length, value_length);
  if (stream->header_list_bytes > s.max_header_list) {
    stream->header_list_too_large = true;
    return 0;
  }
  if (frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
    stream->fields.add(n, v);
  } else if (!n.empty() && n[0] != ':') {
    stream->request_trailers.append(n).append(": ").append(v).append("\r\n");
  }
  return 0;
}

int Session::on_frame_recv(nghttp2_session* ng, const nghttp2_frame* frame, void* user) {
  Session& s = of(user);
  const bool ends = frame->hd.flags & NGHTTP2_FLAG_END_STREAM;
  switch (frame->hd.type) {
    case NGHTTP2_HEADERS:
    case NGHTTP2_DATA: {
      Stream* stream = stream_of(ng, frame->hd.stream_id);
      if (!stream) return 0;
      if (frame->hd.type == NGHTTP2_DATA && frame->hd.length == 0 && !ends) {
        s.glitch(http2::Glitch::kEmptyData);
      }
      if (ends) stream->request_ended = true;
      if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
        stream->chunked_request = !ends && !stream->fields.has_content_length();
        s.started.push_back(stream);
      } else {
        stream->signal.notify();
      }
      return 0;
    }
    case NGHTTP2_SETTINGS:
      if (!(frame->hd.flags & NGHTTP2_FLAG_ACK)) s.glitch(http2::Glitch::kSettings);
      return 0;
    case NGHTTP2_PING:
      if (!(frame->hd.flags & NGHTTP2_FLAG_ACK)) s.glitch(http2::Glitch::kPing);
      return 0;
    case NGHTTP2_PRIORITY:
      s.glitch(http2::Glitch::kPriority);
      return 0;
    case NGHTTP2_RST_STREAM:
      ++s.resets_received;
      return 0;
    default:
      return 0;
  }
}

int Session::on_data_chunk(nghttp2_session* ng, uint8_t, int32_t id, const uint8_t* data,
                           size_t length, void*) {
  Stream* stream = stream_of(ng, id);
  if (!stream || stream->discarding) {
    nghttp2_session_consume(ng, id, length);
    return 0;
  }
  stream->body_in.append(reinterpret_cast<const char*>(data), length);
  stream->signal.notify();
  return 0;
}

int Session::on_stream_close(nghttp2_session* ng, int32_t id, uint32_t code, void* user) {
  Stream* stream = stream_of(ng, id);
  if (stream) of(user).stream_closed(*stream, code);
  return 0;
}

void Session::stream_closed(Stream& stream, uint32_t code) {
  stream.closed = true;
  // DATA nobody will read still holds the connection's window: it is given back.
  nghttp2_session_consume_connection(ng, stream.body_in.size() - stream.body_in_at);
  stream.body_in.clear();
  stream.body_in_at = 0;
  if (stream.out != Stream::Out::kDone || code != NGHTTP2_NO_ERROR) {
    stream.reset = true;
    if (!stream.answered) glitch(http2::Glitch::kResetUnanswered);
    // The backend request is cancelled at once: its socket's operations end, and the exchange
    // sees that the client is gone.
    if (l7::Client* c = stream.client) l7::cancel_upstream(*c);
  }
  stream.signal.notify();
  // A stream closed before its coroutine started never starts.
  std::erase(started, &stream);
  release(stream);
}

int Session::on_frame_send(nghttp2_session*, const nghttp2_frame* frame, void* user) {
  Session& s = of(user);
  if (frame->hd.type == NGHTTP2_GOAWAY && frame->goaway.error_code != NGHTTP2_NO_ERROR) {
    if (!s.error_counted) s.count(s.goaway_reason(frame->goaway));
    s.error_counted = true;
    s.terminated = true;
  } else if (frame->hd.type == NGHTTP2_RST_STREAM) {
    s.reset_streams[s.reset_at++ % std::size(s.reset_streams)] = frame->hd.stream_id;
    const uint32_t code = frame->rst_stream.error_code;
    if (code == NGHTTP2_REFUSED_STREAM) s.count(ProtocolError::kRefusedStream);
    if (code == NGHTTP2_PROTOCOL_ERROR) s.count(ProtocolError::kStreamError);
  }
  return 0;
}

}  // namespace usher::proxy::h2
