#include "base/address.h"

#include <arpa/inet.h>

#include <charconv>
#include <cstring>

namespace usher {

namespace {

Expected<uint16_t> parse_port(std::string_view text) {
  unsigned value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || value > 65535) {
    return Error{"invalid port '" + std::string(text) + "'"};
  }
  return static_cast<uint16_t>(value);
}

}  // namespace

Expected<Address> Address::parse(std::string_view text) {
  std::string_view host;
  std::string_view port_text;
  if (!text.empty() && text.front() == '[') {
    auto close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return Error{"invalid address '" + std::string(text) + "': expected [IPv6]:PORT"};
    }
    host = text.substr(1, close - 1);
    port_text = text.substr(close + 2);
  } else {
    auto colon = text.rfind(':');
    if (colon == std::string_view::npos) {
      return Error{"invalid address '" + std::string(text) + "': expected HOST:PORT"};
    }
    host = text.substr(0, colon);
    port_text = text.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) {
      return Error{"invalid address '" + std::string(text) + "': write IPv6 as [ADDR]:PORT"};
    }
  }
  auto port = parse_port(port_text);
  if (!port) return Error{"invalid address '" + std::string(text) + "': " + port.error().message};

  Address address;
  std::string host_str(host);
  if (host_str.empty() || host_str == "*") host_str = "0.0.0.0";
  if (host_str == "localhost") host_str = "127.0.0.1";
  auto* v4 = reinterpret_cast<sockaddr_in*>(&address.storage_);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&address.storage_);
  if (inet_pton(AF_INET, host_str.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(*port);
    address.length_ = sizeof(sockaddr_in);
    return address;
  }
  if (inet_pton(AF_INET6, host_str.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(*port);
    address.length_ = sizeof(sockaddr_in6);
    return address;
  }
  return Error{"invalid address '" + std::string(text) +
               "': host must be an IP literal or localhost"};
}

uint16_t Address::port() const {
  if (family() == AF_INET6)
    return ntohs(reinterpret_cast<const sockaddr_in6*>(&storage_)->sin6_port);
  return ntohs(reinterpret_cast<const sockaddr_in*>(&storage_)->sin_port);
}

std::string Address::to_string() const {
  char ip[INET6_ADDRSTRLEN + 2];
  size_t n = format_ip(sockaddr_ptr(), ip, sizeof ip);
  std::string host(ip, n);
  if (family() == AF_INET6) host = "[" + host + "]";
  return host + ":" + std::to_string(port());
}

Address Address::from_sockaddr(const sockaddr* sa, socklen_t len) {
  Address address;
  std::memcpy(&address.storage_, sa, std::min<size_t>(len, sizeof address.storage_));
  address.length_ = len;
  return address;
}

bool Address::operator==(const Address& other) const {
  return length_ == other.length_ && std::memcmp(&storage_, &other.storage_, length_) == 0;
}

size_t format_ip(const sockaddr* sa, char* out, size_t cap) {
  const void* src =
      sa->sa_family == AF_INET6
          ? static_cast<const void*>(&reinterpret_cast<const sockaddr_in6*>(sa)->sin6_addr)
          : static_cast<const void*>(&reinterpret_cast<const sockaddr_in*>(sa)->sin_addr);
  if (inet_ntop(sa->sa_family, src, out, cap) == nullptr) return 0;
  return std::strlen(out);
}

}  // namespace usher
