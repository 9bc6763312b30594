#include "base/ip_range.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <charconv>
#include <cstring>
#include <string>

namespace usher {

namespace {

constexpr uint8_t kV4MappedPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

IpBytes v4(const void* four_bytes) {
  IpBytes ip;
  ip.family = AF_INET;
  std::memcpy(ip.bytes.data() + 12, four_bytes, 4);
  return ip;
}

IpBytes v6(const uint8_t* sixteen_bytes) {
  if (std::memcmp(sixteen_bytes, kV4MappedPrefix, sizeof kV4MappedPrefix) == 0)
    return v4(sixteen_bytes + 12);
  IpBytes ip;
  ip.family = AF_INET6;
  std::memcpy(ip.bytes.data(), sixteen_bytes, 16);
  return ip;
}

}  // namespace

IpBytes IpBytes::from_text(std::string_view text) {
  if (text.size() >= 2 && text.front() == '[' && text.back() == ']') {
    text = text.substr(1, text.size() - 2);
  }
  char buffer[INET6_ADDRSTRLEN];
  if (text.empty() || text.size() >= sizeof buffer) return {};
  std::memcpy(buffer, text.data(), text.size());
  buffer[text.size()] = '\0';
  uint8_t raw[16];
  if (::inet_pton(AF_INET, buffer, raw) == 1) return v4(raw);
  if (::inet_pton(AF_INET6, buffer, raw) == 1) return v6(raw);
  return {};
}

IpBytes IpBytes::from_sockaddr(const sockaddr* sa) {
  if (sa->sa_family == AF_INET) return v4(&reinterpret_cast<const sockaddr_in*>(sa)->sin_addr);
  if (sa->sa_family == AF_INET6) {
    return v6(reinterpret_cast<const sockaddr_in6*>(sa)->sin6_addr.s6_addr);
  }
  return {};
}

Expected<IpRange> IpRange::parse(std::string_view text) {
  const std::string shown(text);
  size_t slash = text.find('/');
  IpRange range;
  range.network_ = IpBytes::from_text(text.substr(0, slash));
  if (range.network_.family == 0) {
    return Error{"'" + shown + "' is not an IP address or CIDR range (like 10.0.0.0/8 or ::1/128)"};
  }
  const unsigned max_bits = range.network_.family == AF_INET ? 32 : 128;
  range.prefix_bits_ = max_bits;
  if (slash != std::string_view::npos) {
    std::string_view bits = text.substr(slash + 1);
    auto [end, ec] = std::from_chars(bits.data(), bits.data() + bits.size(), range.prefix_bits_);
    if (bits.empty() || ec != std::errc() || end != bits.data() + bits.size() ||
        range.prefix_bits_ > max_bits) {
      return Error{"'" + shown + "' has an invalid prefix length (0 to " +
                   std::to_string(max_bits) + ")"};
    }
  }
  if (range.network_.family == AF_INET) range.prefix_bits_ += 96;  // IPv4 sits in the last 32
  return range;
}

bool IpRange::contains(const IpBytes& ip) const {
  if (ip.family != network_.family) return false;
  unsigned full = prefix_bits_ / 8;
  if (std::memcmp(ip.bytes.data(), network_.bytes.data(), full) != 0) return false;
  unsigned rest = prefix_bits_ % 8;
  if (rest == 0) return true;
  auto mask = static_cast<uint8_t>(0xff << (8 - rest));
  return (ip.bytes[full] & mask) == (network_.bytes[full] & mask);
}

}  // namespace usher
