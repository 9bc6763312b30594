#include "codec/http1/body.h"

#include <algorithm>

#include "codec/http1/chars.h"

namespace usher::http1 {

namespace {
constexpr uint8_t kMaxChunkSizeDigits = 15;  // < 2^60: no overflow in the size arithmetic
constexpr uint32_t kMaxTrailerBytes = 16 * 1024;
}  // namespace

BodyDecoder::BodyDecoder(const Framing& framing) : kind_(framing.kind) {
  switch (framing.kind) {
    case Framing::Kind::kNone:
      state_ = State::kDone;
      break;
    case Framing::Kind::kLength:
      state_ = framing.length ? State::kLength : State::kDone;
      remaining_ = framing.length;
      break;
    case Framing::Kind::kChunked:
      state_ = State::kChunkSize;
      break;
    case Framing::Kind::kUntilClose:
      state_ = State::kUntilClose;
      break;
  }
}

ParseStatus BodyDecoder::fail(const char* reason) {
  error_ = reason;
  return ParseStatus::kError;
}

ParseStatus BodyDecoder::feed(std::string_view in, BodyStep& step) {
  step = BodyStep{};
  switch (state_) {
    case State::kDone:
      return ParseStatus::kComplete;
    case State::kLength: {
      size_t n = static_cast<size_t>(std::min<uint64_t>(remaining_, in.size()));
      step = {n, 0, n};
      remaining_ -= n;
      if (remaining_ == 0) state_ = State::kDone;
      return done() ? ParseStatus::kComplete : ParseStatus::kIncomplete;
    }
    case State::kUntilClose:
      step = {in.size(), 0, in.size()};
      return ParseStatus::kIncomplete;
    default:
      return feed_chunked(in, step);
  }
}

ParseStatus BodyDecoder::feed_chunked(std::string_view in, BodyStep& step) {
  size_t i = 0;
  while (i < in.size()) {
    auto c = static_cast<unsigned char>(in[i]);
    switch (state_) {
      case State::kChunkSize: {
        int8_t digit = kChars.hex[c];
        if (digit >= 0) {
          if (++size_digits_ > kMaxChunkSizeDigits) return fail("chunk size too large");
          remaining_ = remaining_ * 16 + static_cast<uint64_t>(digit);
          ++i;
          break;
        }
        if (size_digits_ == 0) return fail("invalid chunk size");
        if (c == ';') {
          state_ = State::kChunkExtension;
        } else if (c == '\r') {
          state_ = State::kChunkSizeLf;
        } else {
          return fail("invalid character after chunk size");
        }
        ++i;
        break;
      }
      case State::kChunkExtension:
        if (c == '\r') {
          state_ = State::kChunkSizeLf;
        } else if (!(c == '\t' || (c >= 0x20 && c <= 0x7e))) {
          return fail("invalid character in chunk extension");
        }
        ++i;
        break;
      case State::kChunkSizeLf:
        if (c != '\n') return fail("chunk size line not ended by CRLF");
        ++i;
        size_digits_ = 0;
        if (remaining_ == 0) {
          state_ = State::kTrailerLineStart;
          step = {i, 0, 0};
          return ParseStatus::kIncomplete;
        }
        state_ = State::kChunkData;
        break;
      case State::kChunkData: {
        size_t n = static_cast<size_t>(std::min<uint64_t>(remaining_, in.size() - i));
        remaining_ -= n;
        if (remaining_ == 0) state_ = State::kChunkDataCr;
        step = {i + n, i, n};
        return ParseStatus::kIncomplete;
      }
      case State::kChunkDataCr:
        if (c != '\r') return fail("chunk data not followed by CRLF");
        state_ = State::kChunkDataLf;
        ++i;
        break;
      case State::kChunkDataLf:
        if (c != '\n') return fail("chunk data not followed by CRLF");
        state_ = State::kChunkSize;
        ++i;
        break;
      case State::kTrailerLineStart:
        if (c == '\r') {
          state_ = State::kLastLf;
        } else if (is_token(c)) {
          state_ = State::kTrailerName;
        } else {
          return fail("invalid trailer field");
        }
        ++i;
        break;
      case State::kTrailerName:
        if (c == ':') {
          state_ = State::kTrailerValue;
        } else if (!is_token(c)) {
          return fail("invalid trailer field name");
        }
        ++i;
        break;
      case State::kTrailerValue:
        if (c == '\r') {
          state_ = State::kTrailerLf;
        } else if (!is_field_value(c)) {
          return fail("invalid character in trailer field");
        }
        ++i;
        break;
      case State::kTrailerLf:
        if (c != '\n') return fail("trailer line not ended by CRLF");
        state_ = State::kTrailerLineStart;
        ++i;
        break;
      case State::kLastLf:
        if (c != '\n') return fail("last chunk not ended by CRLF");
        state_ = State::kDone;
        step = {i + 1, 0, 0};
        return ParseStatus::kComplete;
      default:
        return fail("body decoder misuse");
    }
    if (state_ == State::kTrailerName || state_ == State::kTrailerValue ||
        state_ == State::kTrailerLf || state_ == State::kTrailerLineStart) {
      if (++trailer_bytes_ > kMaxTrailerBytes) return fail("trailer section too large");
    }
  }
  step = {in.size(), 0, 0};
  return ParseStatus::kIncomplete;
}

}  // namespace usher::http1
