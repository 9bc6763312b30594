// Frame boundaries of a WebSocket byte stream, whatever the pieces it arrives in, and the Close
// frames usher sends at the drain's end.
#include "proxy/l7/websocket_frames.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

namespace usher::proxy::l7::websocket {
namespace {

// A frame as RFC 6455 §5.2 lays it out; the payload is left as is (masking does not move
// boundaries).
std::string frame(uint8_t opcode, size_t length, bool masked) {
  std::string out(1, static_cast<char>(0x80 | opcode));
  const char mask_bit = masked ? static_cast<char>(0x80) : 0;
  if (length < 126) {
    out += static_cast<char>(mask_bit | static_cast<char>(length));
  } else if (length <= 0xFFFF) {
    out += static_cast<char>(mask_bit | 126);
    for (int shift = 8; shift >= 0; shift -= 8) out += static_cast<char>(length >> shift);
  } else {
    out += static_cast<char>(mask_bit | 127);
    for (int shift = 56; shift >= 0; shift -= 8) out += static_cast<char>(length >> shift);
  }
  if (masked) out += "\x12\x34\x56\x78";
  return out + std::string(length, 'p');
}

// Where boundaries fall when the stream is fed one byte at a time.
std::vector<size_t> boundaries_bytewise(const std::string& stream) {
  FrameTracker tracker;
  std::vector<size_t> at;
  for (size_t i = 0; i < stream.size(); ++i) {
    tracker.feed(std::string_view(stream).substr(i, 1));
    if (tracker.at_boundary()) at.push_back(i + 1);
  }
  return at;
}

TEST(FrameTracker, FindsTheEndOfEveryLengthForm) {
  for (bool masked : {false, true}) {
    for (size_t length : {0, 1, 125, 126, 127, 65535, 65536, 70000}) {
      const std::string one = frame(0x2, length, masked);
      FrameTracker tracker;
      tracker.feed(std::string_view(one).substr(0, one.size() - 1));
      EXPECT_FALSE(tracker.at_boundary()) << length << " masked " << masked;
      tracker.feed(std::string_view(one).substr(one.size() - 1));
      EXPECT_TRUE(tracker.at_boundary()) << length << " masked " << masked;
      EXPECT_EQ(boundaries_bytewise(one), std::vector<size_t>{one.size()});
    }
  }
}

TEST(FrameTracker, FollowsFramesBackToBackInAnyPieces) {
  const std::string a = frame(0x1, 5, true), b = frame(0x2, 300, true), c = frame(0x9, 0, true),
                    d = frame(0x0, 70000, false);
  const std::string stream = a + b + c + d;
  const std::vector<size_t> expected = {a.size(), a.size() + b.size(),
                                        a.size() + b.size() + c.size(), stream.size()};
  EXPECT_EQ(boundaries_bytewise(stream), expected);
  for (size_t piece : {2, 3, 7, 1000, 4096}) {
    FrameTracker tracker;
    for (size_t i = 0; i < stream.size(); i += piece) {
      tracker.feed(std::string_view(stream).substr(i, piece));
    }
    EXPECT_TRUE(tracker.at_boundary()) << piece;
  }
}

TEST(FrameTracker, StartsAtABoundaryAndStopsInsideAHeader) {
  FrameTracker tracker;
  EXPECT_TRUE(tracker.at_boundary());
  tracker.feed("\x81");
  EXPECT_FALSE(tracker.at_boundary());
  tracker.feed(std::string("\xFE\x01", 2));  // masked, 16-bit length, one byte of it
  EXPECT_FALSE(tracker.at_boundary());
  tracker.feed(std::string("\x00", 1));  // length 256, then the mask
  tracker.feed("abc");
  EXPECT_FALSE(tracker.at_boundary());
  tracker.feed("d" + std::string(255, 'x'));
  EXPECT_FALSE(tracker.at_boundary());
  tracker.feed("x");
  EXPECT_TRUE(tracker.at_boundary());
}

TEST(FrameTracker, SeesACloseFrameBegin) {
  FrameTracker tracker;
  tracker.feed(frame(0x1, 10, false));
  EXPECT_FALSE(tracker.close_seen());
  tracker.feed("\x88");
  EXPECT_TRUE(tracker.close_seen());
  EXPECT_FALSE(tracker.at_boundary());
}

TEST(CloseFrame, CarriesTheCodeUnmaskedToClients) {
  EXPECT_EQ(close_frame(kGoingAway).view(), std::string_view("\x88\x02\x03\xE9", 4));
}

TEST(CloseFrame, IsMaskedToBackends) {
  const CloseFrame masked = masked_close_frame(kGoingAway, 0xA1B2C3D4);
  const std::string_view bytes = masked.view();
  ASSERT_EQ(bytes.size(), 8u);
  EXPECT_EQ(bytes.substr(0, 6), std::string_view("\x88\x82\xA1\xB2\xC3\xD4", 6));
  EXPECT_EQ(static_cast<uint8_t>(bytes[6] ^ bytes[2]), 0x03);
  EXPECT_EQ(static_cast<uint8_t>(bytes[7] ^ bytes[3]), 0xE9);
  FrameTracker tracker;
  tracker.feed(bytes);
  EXPECT_TRUE(tracker.at_boundary());
  EXPECT_TRUE(tracker.close_seen());
}

}  // namespace
}  // namespace usher::proxy::l7::websocket
