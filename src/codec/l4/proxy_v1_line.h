#pragma once
// The v1 text line, read as far as the bytes go (internal to proxy_protocol.cc, apart so that
// each file stays about one format).
#include <cstddef>
#include <optional>
#include <string_view>

#include "base/address.h"
#include "codec/l4/proxy_protocol.h"

namespace usher::l4 {

struct V1Line {
  ProxyStatus status = ProxyStatus::kNeedMore;
  size_t offset = 0;          // kDone: bytes of the line, CRLF included; kError: the bad byte
  const char* why = nullptr;  // kError
  std::optional<Address> source, destination;  // TCP4 and TCP6 only
};

// Every byte is checked as it comes, so a line that cannot be valid fails at its first wrong
// byte; the caller bounds the line's length.
V1Line parse_v1_line(std::string_view line);

}  // namespace usher::l4
