#pragma once
// A numeric socket address (IPv4 or IPv6 literal plus port). No name is ever resolved: parse()
// reads `localhost` as 127.0.0.1 and refuses any other name.
#include <netinet/in.h>
#include <sys/socket.h>

#include <string>
#include <string_view>

#include "base/expected.h"

namespace usher {

class Address {
 public:
  // Accepts "1.2.3.4:80", "[::1]:80", "localhost:80", ":80" (all IPv4 interfaces).
  static Expected<Address> parse(std::string_view text);

  const sockaddr* sockaddr_ptr() const { return reinterpret_cast<const sockaddr*>(&storage_); }
  socklen_t length() const { return length_; }
  int family() const { return storage_.ss_family; }
  uint16_t port() const;
  std::string to_string() const;

  static Address from_sockaddr(const sockaddr* sa, socklen_t len);
  bool operator==(const Address& other) const;

 private:
  sockaddr_storage storage_{};
  socklen_t length_ = 0;
};

// The textual IP of a peer, as written into X-Forwarded-For. Writes into out, returns length.
size_t format_ip(const sockaddr* sa, char* out, size_t cap);

}  // namespace usher
