#pragma once
// An IP network in CIDR notation ("10.0.0.0/8", "::1/128", or a bare address for one host), for
// lists such as trusted_proxies. IPv4-mapped IPv6 addresses count as their IPv4 address.
#include <sys/socket.h>

#include <array>
#include <cstdint>
#include <string_view>

#include "base/expected.h"

namespace usher {

// An address as 16 bytes (IPv4 in the last four) plus its family: what ranges compare against.
struct IpBytes {
  int family = 0;  // AF_INET or AF_INET6; 0 when the text was not an IP
  std::array<uint8_t, 16> bytes{};

  static IpBytes from_text(std::string_view text);  // "1.2.3.4", "::1"; "[::1]" too
  static IpBytes from_sockaddr(const sockaddr* sa);
};

class IpRange {
 public:
  static Expected<IpRange> parse(std::string_view text);
  bool contains(const IpBytes& ip) const;

  // As written: host bits past the prefix are kept ("10.0.0.1/8" keeps its .1).
  const IpBytes& network() const { return network_; }
  // Counted in the 16-byte space, so an IPv4 range has 96 added ("10.0.0.0/8" gives 104).
  unsigned prefix_bits() const { return prefix_bits_; }

 private:
  IpBytes network_;
  unsigned prefix_bits_ = 0;
};

}  // namespace usher
