#include "codec/http2/outgoing_body.h"

#include <algorithm>
#include <cstring>

#include "codec/http2/header_list.h"

namespace usher::http2 {

bool OutgoingBody::feed(std::string_view bytes) {
  while (!bytes.empty() && !decoder_.done()) {
    http1::BodyStep step;
    const bool in_trailers = decoder_.in_trailers();
    if (decoder_.feed(bytes, step) == http1::ParseStatus::kError) return false;
    if (in_trailers) {
      trailers_.append(bytes.substr(0, step.consumed));
    } else {
      data_.append(bytes.substr(step.data_offset, step.data_length));
    }
    bytes.remove_prefix(step.consumed);
  }
  ended_ = ended_ || decoder_.done();
  return true;
}

void OutgoingBody::end(std::string trailers) {
  if (!trailers.empty()) trailers_ = std::move(trailers);
  ended_ = true;
}

ssize_t OutgoingBody::read(nghttp2_session* ng, int32_t id, uint8_t* buffer, size_t length,
                           uint32_t* flags) {
  const size_t n = std::min(buffered(), length);
  std::memcpy(buffer, data_.data() + at_, n);
  at_ += n;
  if (at_ == data_.size()) {
    data_.clear();
    at_ = 0;
  }
  if (ended_ && data_.empty()) {
    *flags |= NGHTTP2_DATA_FLAG_EOF;
    HeaderList trailers;
    if (!trailers_.empty() && trailers.assign_trailers(trailers_) && !trailers.empty()) {
      *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
      const auto& nv = trailers.entries();
      nghttp2_submit_trailer(ng, id, nv.data(), nv.size());
    }
  } else if (n == 0) {
    deferred_ = true;
    return NGHTTP2_ERR_DEFERRED;
  }
  return static_cast<ssize_t>(n);
}

}  // namespace usher::http2
