#pragma once
// Message body framing (RFC 9112 §6-7): tells which received bytes belong to the body, where the
// payload lies inside chunked framing, and where the message ends. Validates chunked framing
// strictly so that what is forwarded can only be read one way.
#include <cstdint>
#include <string_view>

#include "codec/http1/message.h"

namespace usher::http1 {

struct BodyStep {
  size_t consumed = 0;  // bytes of the input that belong to this body
  size_t data_offset =
      0;  // payload within [0, consumed): chunk data, or all of it when not chunked
  size_t data_length = 0;
};

class BodyDecoder {
 public:
  BodyDecoder() = default;
  explicit BodyDecoder(const Framing& framing);

  // Consumes input up to and including at most one payload segment; call again with the rest.
  // Returns kError on malformed chunked framing (reason in error_reason()).
  ParseStatus feed(std::string_view in, BodyStep& step);

  bool done() const { return state_ == State::kDone; }
  bool chunked() const { return kind_ == Framing::Kind::kChunked; }
  bool until_close() const { return kind_ == Framing::Kind::kUntilClose; }
  // Between the last chunk's line and the end of the message: what is fed now is the trailer
  // section (feed stops right after the last chunk's line, so that its caller can tell).
  bool in_trailers() const {
    return state_ == State::kTrailerLineStart || state_ == State::kTrailerName ||
           state_ == State::kTrailerValue || state_ == State::kTrailerLf ||
           state_ == State::kLastLf;
  }
  const char* error_reason() const { return error_; }
  uint64_t remaining() const { return remaining_; }

 private:
  enum class State : uint8_t {
    kLength,
    kUntilClose,
    kChunkSize,
    kChunkExtension,
    kChunkSizeLf,
    kChunkData,
    kChunkDataCr,
    kChunkDataLf,
    kTrailerLineStart,
    kTrailerName,
    kTrailerValue,
    kTrailerLf,
    kLastLf,
    kDone,
  };

  ParseStatus fail(const char* reason);
  ParseStatus feed_chunked(std::string_view in, BodyStep& step);

  Framing::Kind kind_ = Framing::Kind::kNone;
  State state_ = State::kDone;
  uint64_t remaining_ = 0;
  uint8_t size_digits_ = 0;
  uint32_t trailer_bytes_ = 0;
  const char* error_ = "";
};

}  // namespace usher::http1
