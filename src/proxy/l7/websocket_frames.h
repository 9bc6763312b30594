#pragma once
// Where WebSocket frames (RFC 6455 §5.2) begin and end in one direction of a tunnel, so that a
// tunnel ended at the drain's end puts its Close frame between two frames and never inside one;
// and the Close frames it sends then.
#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace usher::proxy::l7::websocket {

// Follows the frame headers of a byte stream fed in order, counting each payload down.
class FrameTracker {
 public:
  void feed(std::string_view bytes);
  // Whether the bytes fed so far end exactly after a whole frame.
  bool at_boundary() const { return stage_ == Stage::kFirstByte; }
  // Whether a Close frame has begun: the closing handshake is under way and no frame may follow.
  bool close_seen() const { return close_seen_; }

 private:
  enum class Stage : uint8_t { kFirstByte, kSecondByte, kLength, kMask, kPayload };
  void length_known();
  void mask_known();

  Stage stage_ = Stage::kFirstByte;
  uint8_t header_left_ = 0;  // extended length or mask bytes still to come
  bool masked_ = false;
  bool close_seen_ = false;
  uint64_t count_ = 0;  // the extended length as it arrives, then the payload bytes left
};

// Going Away (§7.4.1): the endpoint is going down.
inline constexpr uint16_t kGoingAway = 1001;

// A Close frame carrying a status code.
struct CloseFrame {
  std::array<char, 8> bytes{};
  size_t size = 0;
  std::string_view view() const { return {bytes.data(), size}; }
};

// Unmasked, as a server sends it to a client.
CloseFrame close_frame(uint16_t code);
// Masked with `mask`, as a client must send it to a server (§5.3).
CloseFrame masked_close_frame(uint16_t code, uint32_t mask);

}  // namespace usher::proxy::l7::websocket
