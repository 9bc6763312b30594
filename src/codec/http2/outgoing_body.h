#pragma once
// A message body on its way from HTTP/1.1 into DATA frames: body bytes in as the L7 path writes
// them (chunked framing taken off, a trailer section kept for a trailing HEADERS frame), payload
// out as nghttp2's data source asks for it. Used for responses to HTTP/2 clients and requests to
// HTTP/2 backends alike.
#include <nghttp2/nghttp2.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "codec/http1/body.h"

namespace usher::http2 {

class OutgoingBody {
 public:
  void start(const http1::Framing& framing) { decoder_ = http1::BodyDecoder(framing); }
  // False on malformed framing. The body ends when its framing says so, or at end().
  bool feed(std::string_view bytes);
  // A body delimited by its connection's close ends here; `trailers` ("name: value\r\n" lines)
  // replace any the body carried.
  void end(std::string trailers = {});

  bool whole() const { return ended_; }  // every byte of it was fed
  bool empty_at_start() const { return decoder_.done(); }
  bool until_close() const { return decoder_.until_close(); }
  size_t buffered() const { return data_.size() - at_; }

  // nghttp2's data source read for stream `id`: the payload fed so far, the end of the stream
  // once whole (after a trailing HEADERS frame when it had trailers), or NGHTTP2_ERR_DEFERRED
  // (resume() then says whether nghttp2 must be told that more came).
  ssize_t read(nghttp2_session* ng, int32_t id, uint8_t* buffer, size_t length, uint32_t* flags);
  // Whether nghttp2 waits for this body: the caller resumes the stream's data when it did.
  bool take_deferred() {
    const bool was = deferred_;
    deferred_ = false;
    return was;
  }

 private:
  http1::BodyDecoder decoder_;
  std::string data_;
  size_t at_ = 0;
  std::string trailers_;
  bool ended_ = false;
  bool deferred_ = false;
};

}  // namespace usher::http2
