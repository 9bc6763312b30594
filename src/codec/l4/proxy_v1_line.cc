#include "codec/l4/proxy_v1_line.h"

#include <arpa/inet.h>

#include <algorithm>
#include <string>

namespace usher::l4 {

namespace {

enum class Step : uint8_t { kOk, kMore, kBad };

constexpr size_t kMaxIpv6Text = INET6_ADDRSTRLEN - 1;  // with an embedded IPv4 address

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

bool is_ipv6_char(char c) {
  return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || c == ':' || c == '.';
}

// A cursor over the line that reports kMore when the bytes end inside a still valid field.
class Reader {
 public:
  explicit Reader(std::string_view line) : line_(line) {}

  size_t pos() const { return pos_; }
  size_t bad_offset() const { return bad_offset_; }
  const char* why() const { return why_; }

  Step literal(std::string_view text) {
    for (size_t i = 0; i < text.size(); ++i, ++pos_) {
      if (pos_ == line_.size()) return Step::kMore;
      if (line_[pos_] != text[i]) return bad(pos_, "unexpected byte");
    }
    return Step::kOk;
  }

  // One of the fixed texts `options`; `chosen` is its index.
  template <size_t N>
  Step one_of(const std::string_view (&options)[N], size_t& chosen) {
    const std::string_view rest = line_.substr(pos_);
    size_t matched = 0;  // the longest common prefix with any option, for the error's offset
    bool viable = false;
    for (size_t i = 0; i < N; ++i) {
      const std::string_view option = options[i];
      size_t n = 0;
      while (n < option.size() && n < rest.size() && rest[n] == option[n]) ++n;
      matched = std::max(matched, n);
      if (n == option.size()) {
        chosen = i;
        pos_ += n;
        return Step::kOk;
      }
      viable = viable || n == rest.size();
    }
    return viable ? Step::kMore : bad(pos_ + matched, "unknown protocol");
  }

  // A dotted quad of decimal octets 0-255 without leading zeros, ended by `end`.
  Step ipv4(char end, sockaddr_storage& out) {
    const size_t start = pos_;
    int dots = 0, digits = 0, octet = 0;
    for (; pos_ < line_.size(); ++pos_) {
      const char c = line_[pos_];
      if (is_digit(c)) {
        if (digits > 0 && octet == 0) return bad(pos_, "leading zero in an IPv4 address");
        octet = octet * 10 + (c - '0');
        if (octet > 255) return bad(pos_, "IPv4 octet over 255");
        ++digits;
      } else if (c == '.') {
        if (digits == 0 || ++dots > 3) return bad(pos_, "not a dotted quad");
        digits = octet = 0;
      } else if (c == end && dots == 3 && digits > 0) {
        return address(AF_INET, start, out);
      } else {
        return bad(pos_, "not an IPv4 address");
      }
    }
    return Step::kMore;
  }

  // An IPv6 address as inet_pton reads it, ended by `end`.
  Step ipv6(char end, sockaddr_storage& out) {
    const size_t start = pos_;
    for (; pos_ < line_.size(); ++pos_) {
      const char c = line_[pos_];
      if (c == end && pos_ > start) return address(AF_INET6, start, out);
      if (!is_ipv6_char(c) || pos_ - start >= kMaxIpv6Text) {
        return bad(pos_, "not an IPv6 address");
      }
    }
    return Step::kMore;
  }

  // A decimal port 0-65535, "0" the only one starting with 0, ended by `end`.
  Step port(char end, uint16_t& out) {
    const size_t start = pos_;
    unsigned value = 0;
    for (; pos_ < line_.size(); ++pos_) {
      const char c = line_[pos_];
      if (c == end && pos_ > start) {
        ++pos_;
        out = static_cast<uint16_t>(value);
        return Step::kOk;
      }
      if (!is_digit(c)) return bad(pos_, "not a port number");
      if (pos_ > start && value == 0) return bad(pos_, "leading zero in a port");
      value = value * 10 + static_cast<unsigned>(c - '0');
      if (value > 65535) return bad(pos_, "port over 65535");
    }
    return Step::kMore;
  }

  // What follows UNKNOWN: nothing, or a space and anything up to the CRLF (the spec has the
  // receiver ignore it).
  Step unknown_rest() {
    if (pos_ == line_.size()) return Step::kMore;
    if (line_[pos_] != ' ' && line_[pos_] != '\r') return bad(pos_, "unexpected byte");
    for (; pos_ < line_.size(); ++pos_) {
      if (line_[pos_] == '\n') return bad(pos_, "LF without CR");
      if (line_[pos_] == '\r') return literal("\r\n");
    }
    return Step::kMore;
  }

 private:
  Step bad(size_t offset, const char* why) {
    bad_offset_ = offset;
    why_ = why;
    return Step::kBad;
  }

  Step address(int family, size_t start, sockaddr_storage& out) {
    const std::string text(line_.substr(start, pos_ - start));
    void* raw = family == AF_INET
                    ? static_cast<void*>(&reinterpret_cast<sockaddr_in*>(&out)->sin_addr)
                    : static_cast<void*>(&reinterpret_cast<sockaddr_in6*>(&out)->sin6_addr);
    if (inet_pton(family, text.c_str(), raw) != 1) {
      return bad(start, family == AF_INET ? "not an IPv4 address" : "not an IPv6 address");
    }
    out.ss_family = static_cast<sa_family_t>(family);
    ++pos_;
    return Step::kOk;
  }

  std::string_view line_;
  size_t pos_ = 0;
  size_t bad_offset_ = 0;
  const char* why_ = nullptr;
};

// `ip` holds the address, without its port.
Address with_port(sockaddr_storage ip, uint16_t port) {
  if (ip.ss_family == AF_INET) {
    reinterpret_cast<sockaddr_in*>(&ip)->sin_port = htons(port);
    return Address::from_sockaddr(reinterpret_cast<const sockaddr*>(&ip), sizeof(sockaddr_in));
  }
  reinterpret_cast<sockaddr_in6*>(&ip)->sin6_port = htons(port);
  return Address::from_sockaddr(reinterpret_cast<const sockaddr*>(&ip), sizeof(sockaddr_in6));
}

// "TCP4 " or "TCP6 " read: the addresses and ports, then CRLF.
Step addresses(Reader& r, bool v4, V1Line& result) {
  sockaddr_storage source{}, destination{};
  uint16_t source_port = 0, destination_port = 0;
  Step step = v4 ? r.ipv4(' ', source) : r.ipv6(' ', source);
  if (step == Step::kOk) step = v4 ? r.ipv4(' ', destination) : r.ipv6(' ', destination);
  if (step == Step::kOk) step = r.port(' ', source_port);
  if (step == Step::kOk) step = r.port('\r', destination_port);
  if (step == Step::kOk) step = r.literal("\n");
  if (step == Step::kOk) {
    result.source = with_port(source, source_port);
    result.destination = with_port(destination, destination_port);
  }
  return step;
}

}  // namespace

V1Line parse_v1_line(std::string_view line) {
  V1Line result;
  Reader r(line);
  static constexpr std::string_view kProtocols[] = {"TCP4 ", "TCP6 ", "UNKNOWN"};
  size_t protocol = 0;
  Step step = r.literal("PROXY ");
  if (step == Step::kOk) step = r.one_of(kProtocols, protocol);
  if (step == Step::kOk) {
    step = protocol == 2 ? r.unknown_rest() : addresses(r, protocol == 0, result);
  }
  if (step == Step::kBad) {
    result.status = ProxyStatus::kError;
    result.offset = r.bad_offset();
    result.why = r.why();
  } else if (step == Step::kOk) {
    result.status = ProxyStatus::kDone;
    result.offset = r.pos();
  }
  return result;
}

}  // namespace usher::l4
