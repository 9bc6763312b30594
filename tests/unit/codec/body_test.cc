#include "codec/http1/body.h"

#include <gtest/gtest.h>

#include <string>

namespace usher::http1 {
namespace {

struct Decoded {
  ParseStatus status = ParseStatus::kIncomplete;
  std::string payload;
  size_t consumed = 0;
};

// Feeds `input` in pieces of `piece` bytes, as a socket might deliver it.
Decoded decode(const Framing& framing, const std::string& input, size_t piece = 1 << 20) {
  BodyDecoder decoder(framing);
  Decoded out;
  size_t offered = 0;
  std::string window;
  while (true) {
    if (window.empty()) {
      if (offered == input.size()) break;
      size_t n = std::min(piece, input.size() - offered);
      window = input.substr(offered, n);
      offered += n;
    }
    BodyStep step;
    out.status = decoder.feed(window, step);
    if (out.status == ParseStatus::kError) return out;
    out.payload += window.substr(step.data_offset, step.data_length);
    out.consumed += step.consumed;
    window.erase(0, step.consumed);
    if (decoder.done()) {
      out.status = ParseStatus::kComplete;
      break;
    }
  }
  return out;
}

const Framing kChunked{Framing::Kind::kChunked, 0, "chunked"};

TEST(Body, ContentLengthStopsAtTheLength) {
  Decoded d = decode({Framing::Kind::kLength, 5, {}}, "helloEXTRA", 3);
  EXPECT_EQ(d.status, ParseStatus::kComplete);
  EXPECT_EQ(d.payload, "hello");
  EXPECT_EQ(d.consumed, 5u);
}

TEST(Body, ChunkedDecodesInAnySplit) {
  std::string wire = "5\r\nhello\r\n6;name=value\r\n world\r\n0\r\nTrailer: x\r\n\r\nNEXT";
  for (size_t piece : {1, 2, 3, 7, 100}) {
    Decoded d = decode(kChunked, wire, piece);
    EXPECT_EQ(d.status, ParseStatus::kComplete) << piece;
    EXPECT_EQ(d.payload, "hello world") << piece;
    EXPECT_EQ(d.consumed, wire.size() - 4) << piece;
  }
}

TEST(Body, ChunkedUppercaseHexAndLeadingZeros) {
  Decoded d = decode(kChunked, "00A\r\n0123456789\r\n0\r\n\r\n");
  EXPECT_EQ(d.status, ParseStatus::kComplete);
  EXPECT_EQ(d.payload, "0123456789");
}

TEST(Body, ChunkedRejectsAmbiguousFraming) {
  for (const char* wire : {
           "x\r\n",                          // not hex
           "\r\n",                           // empty size
           "5 \r\nhello\r\n0\r\n\r\n",       // whitespace after size
           "5\nhello\r\n0\r\n\r\n",          // bare LF
           "5\r\nhelloX\r\n0\r\n\r\n",       // data longer than the size
           "5\r\nhello\n0\r\n\r\n",          // data not ended by CRLF
           "-5\r\nhello\r\n0\r\n\r\n",       // sign
           "0x5\r\nhello\r\n0\r\n\r\n",      // prefix
           "1000000000000000\r\n",           // 16 hex digits: would overflow arithmetic
           "5;a\x01\r\nhello\r\n0\r\n\r\n",  // control character in an extension
           "0\r\nbad trailer\r\n\r\n",       // trailer line without a field name start
           "0\r\n\r\r\n",                    // CR CR
       }) {
    EXPECT_EQ(decode(kChunked, wire).status, ParseStatus::kError) << wire;
  }
}

TEST(Body, UntilCloseTakesEverything) {
  BodyDecoder decoder({Framing::Kind::kUntilClose, 0, {}});
  BodyStep step;
  EXPECT_EQ(decoder.feed("abc", step), ParseStatus::kIncomplete);
  EXPECT_EQ(step.consumed, 3u);
  EXPECT_FALSE(decoder.done());
}

}  // namespace
}  // namespace usher::http1
