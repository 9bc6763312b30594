#include "proxy/l7/websocket_frames.h"

#include <algorithm>

namespace usher::proxy::l7::websocket {

namespace {

constexpr uint8_t kOpcodeBits = 0x0F;
constexpr uint8_t kOpClose = 0x8;
constexpr uint8_t kFin = 0x80;
constexpr uint8_t kMaskBit = 0x80;
constexpr uint8_t kLengthBits = 0x7F;
constexpr uint8_t kLength16 = 126;  // two bytes of length follow
constexpr uint8_t kLength64 = 127;  // eight bytes of length follow

}  // namespace

void FrameTracker::feed(std::string_view bytes) {
  size_t i = 0;
  while (i < bytes.size()) {
    if (stage_ == Stage::kPayload) {
      const uint64_t take = std::min<uint64_t>(count_, bytes.size() - i);
      i += take;
      count_ -= take;
      if (count_ == 0) stage_ = Stage::kFirstByte;
      continue;
    }
    const auto byte = static_cast<uint8_t>(bytes[i++]);
    switch (stage_) {
      case Stage::kFirstByte:
        if ((byte & kOpcodeBits) == kOpClose) close_seen_ = true;
        stage_ = Stage::kSecondByte;
        break;
      case Stage::kSecondByte:
        masked_ = (byte & kMaskBit) != 0;
        count_ = byte & kLengthBits;
        if (count_ < kLength16) {
          length_known();
        } else {
          header_left_ = count_ == kLength16 ? 2 : 8;
          count_ = 0;
          stage_ = Stage::kLength;
        }
        break;
      case Stage::kLength:
        count_ = count_ << 8 | byte;
        if (--header_left_ == 0) length_known();
        break;
      case Stage::kMask:
        if (--header_left_ == 0) mask_known();
        break;
      case Stage::kPayload:
        break;
    }
  }
}

void FrameTracker::length_known() {
  if (!masked_) return mask_known();
  header_left_ = 4;
  stage_ = Stage::kMask;
}

void FrameTracker::mask_known() {
  stage_ = count_ == 0 ? Stage::kFirstByte : Stage::kPayload;
}

CloseFrame close_frame(uint16_t code) {
  CloseFrame frame;
  frame.bytes = {static_cast<char>(kFin | kOpClose), 2, static_cast<char>(code >> 8),
                 static_cast<char>(code & 0xFF)};
  frame.size = 4;
  return frame;
}

CloseFrame masked_close_frame(uint16_t code, uint32_t mask) {
  const char key[4] = {static_cast<char>(mask >> 24), static_cast<char>(mask >> 16),
                       static_cast<char>(mask >> 8), static_cast<char>(mask)};
  CloseFrame frame;
  frame.bytes = {static_cast<char>(kFin | kOpClose),
                 static_cast<char>(kMaskBit | 2),
                 key[0],
                 key[1],
                 key[2],
                 key[3],
                 static_cast<char>((code >> 8) ^ static_cast<uint8_t>(key[0])),
                 static_cast<char>((code & 0xFF) ^ static_cast<uint8_t>(key[1]))};
  frame.size = 8;
  return frame;
}

}  // namespace usher::proxy::l7::websocket
