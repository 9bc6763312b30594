#include "codec/l4/client_hello.h"

#include <algorithm>
#include <array>
#include <cstdint>

namespace usher::l4 {

namespace {

constexpr uint8_t kContentHandshake = 22;
constexpr uint8_t kHandshakeClientHello = 1;
constexpr size_t kRecordHeader = 5;
constexpr size_t kMaxRecordPayload = 16384;  // 2^14, RFC 8446 §5.1
constexpr size_t kHandshakeHeader = 4;
constexpr uint16_t kExtensionServerName = 0;
constexpr uint16_t kExtensionAlpn = 16;
constexpr uint8_t kNameTypeHostName = 0;
constexpr size_t kMaxHostName = 255;

// What went wrong, at an offset in the handshake message (the body parser's coordinates).
struct Fault {
  size_t offset = 0;
  std::string why;
};

// A bounded walk over the handshake message, as TLS's presentation language nests it.
class Cursor {
 public:
  Cursor() = default;
  Cursor(std::string_view bytes, size_t begin, size_t end)
      : bytes_(bytes), pos_(begin), end_(end) {}

  bool empty() const { return pos_ == end_; }
  size_t pos() const { return pos_; }
  std::string_view rest() const { return bytes_.substr(pos_, end_ - pos_); }

  bool skip(size_t n, const char* what, Fault& fault) {
    if (end_ - pos_ < n) return overrun(pos_, what, fault);
    pos_ += n;
    return true;
  }

  bool number(size_t width, size_t& out, const char* what, Fault& fault) {
    if (end_ - pos_ < width) return overrun(pos_, what, fault);
    out = 0;
    for (size_t i = 0; i < width; ++i) out = out << 8 | static_cast<uint8_t>(bytes_[pos_ + i]);
    pos_ += width;
    return true;
  }

  // A vector whose length takes `width` bytes and lies in [min, max]: `inner` walks its
  // contents, which must end inside this cursor's own.
  bool vector(size_t width, size_t min, size_t max, const char* what, Cursor& inner, Fault& fault) {
    const size_t at = pos_;
    size_t length = 0;
    if (!number(width, length, what, fault)) return false;
    if (length > end_ - pos_) return overrun(at, what, fault);
    if (length < min || length > max) {
      fault = {at, std::string(what) + " of " + std::to_string(length) + " bytes"};
      return false;
    }
    inner = Cursor(bytes_, pos_, pos_ + length);
    pos_ += length;
    return true;
  }

 private:
  static bool overrun(size_t at, const char* what, Fault& fault) {
    fault = {at, std::string(what) + " overruns its container"};
    return false;
  }

  std::string_view bytes_;
  size_t pos_ = 0;
  size_t end_ = 0;
};

bool host_name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '-' || c == '_';
}

// RFC 6066 §3: a list of (type, name); one host_name at most, none empty.
bool read_server_name(Cursor data, HelloPeek& peek, Fault& fault) {
  Cursor list;
  if (!data.vector(2, 1, SIZE_MAX, "server name list", list, fault)) return false;
  if (!data.empty()) {
    fault = {data.pos(), "bytes after the server name list"};
    return false;
  }
  bool seen = false;
  while (!list.empty()) {
    const size_t at = list.pos();
    size_t type = 0;
    Cursor name;
    if (!list.number(1, type, "server name type", fault)) return false;
    if (!list.vector(2, 1, SIZE_MAX, "server name", name, fault)) return false;
    if (type != kNameTypeHostName) continue;
    if (seen) {
      fault = {at, "two host names"};
      return false;
    }
    seen = true;
    const std::string_view text = name.rest();
    if (text.size() > kMaxHostName) {
      fault = {at + 1, "host name over " + std::to_string(kMaxHostName) + " bytes"};
      return false;
    }
    for (size_t i = 0; i < text.size(); ++i) {
      if (!host_name_char(text[i])) {
        fault = {name.pos() + i, "host name byte outside [A-Za-z0-9._-]"};
        return false;
      }
    }
    peek.server_name.assign(text);
    for (char& c : peek.server_name) c = (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c;
  }
  return true;
}

// RFC 7301 §3.1: a non-empty list of non-empty protocol names.
bool read_alpn(Cursor data, HelloPeek& peek, Fault& fault) {
  Cursor list;
  if (!data.vector(2, 2, SIZE_MAX, "ALPN protocol list", list, fault)) return false;
  if (!data.empty()) {
    fault = {data.pos(), "bytes after the ALPN protocol list"};
    return false;
  }
  while (!list.empty()) {
    Cursor name;
    if (!list.vector(1, 1, 255, "ALPN protocol", name, fault)) return false;
    peek.alpn.emplace_back(name.rest());
  }
  return true;
}

// The ClientHello body (RFC 8446 §4.1.2, the same layout back to SSL 3.0), `message` its
// whole handshake message.
bool read_hello(std::string_view message, HelloPeek& peek, Fault& fault) {
  Cursor hello(message, kHandshakeHeader, message.size());
  Cursor skipped;
  size_t major = 0;
  if (!hello.number(1, major, "client version", fault)) return false;
  if (major != 3) {
    fault = {kHandshakeHeader, "client version " + std::to_string(major) + ".x, not 3.x"};
    return false;
  }
  if (!hello.skip(1 + 32, "random", fault) ||
      !hello.vector(1, 0, 32, "session id", skipped, fault) ||
      !hello.vector(2, 2, 65534, "cipher suites", skipped, fault)) {
    return false;
  }
  if (skipped.rest().size() % 2 != 0) {
    fault = {skipped.pos() - 2, "cipher suites of an odd length"};
    return false;
  }
  if (!hello.vector(1, 1, 255, "compression methods", skipped, fault)) return false;
  if (hello.empty()) return true;  // before TLS 1.3 extensions may be left out altogether
  Cursor extensions;
  if (!hello.vector(2, 0, SIZE_MAX, "extensions", extensions, fault)) return false;
  if (!hello.empty()) {
    fault = {hello.pos(), "bytes after the extensions"};
    return false;
  }
  bool seen_name = false, seen_alpn = false;
  while (!extensions.empty()) {
    const size_t at = extensions.pos();
    size_t type = 0;
    Cursor data;
    if (!extensions.number(2, type, "extension type", fault) ||
        !extensions.vector(2, 0, SIZE_MAX, "extension", data, fault)) {
      return false;
    }
    // RFC 8446 §4.2 forbids repeats; a backend reading the second would route elsewhere.
    bool* seen = type == kExtensionServerName ? &seen_name
                 : type == kExtensionAlpn     ? &seen_alpn
                                              : nullptr;
    if (seen == nullptr) continue;
    if (*seen) {
      fault = {at, "extension " + std::to_string(type) + " repeated"};
      return false;
    }
    *seen = true;
    const bool ok = type == kExtensionServerName ? read_server_name(data, peek, fault)
                                                 : read_alpn(data, peek, fault);
    if (!ok) return false;
  }
  return true;
}

// A piece of the handshake message carried by one record.
struct Fragment {
  size_t message_offset = 0;
  size_t input_offset = 0;
  size_t length = 0;
};

// The records' walk so far: where the message's pieces lie in the input.
struct Framing {
  std::array<Fragment, kMaxClientHelloRecords> fragments{};
  size_t count = 0;
  size_t have = 0;   // message bytes seen
  size_t total = 0;  // message length, header included; 0 until its header is in
  std::array<uint8_t, kHandshakeHeader> header{};
  std::array<size_t, kHandshakeHeader> header_offsets{};  // where each header byte lies

  size_t input_offset(size_t message_offset) const {
    for (size_t i = 0; i < count; ++i) {
      const Fragment& f = fragments[i];
      if (message_offset - f.message_offset < f.length) {
        return f.input_offset + (message_offset - f.message_offset);
      }
    }
    return fragments[count - 1].input_offset + fragments[count - 1].length;
  }
};

HelloPeek failure(HelloStatus status, size_t offset, std::string_view why) {
  HelloPeek peek;
  peek.status = status;
  if (status == HelloStatus::kError) {
    peek.error = "ClientHello: byte " + std::to_string(offset) + ": " + std::string(why);
  }
  return peek;
}

// Takes one byte of the handshake header, failing as soon as the type or the length (even
// partly known) rules a ClientHello out.
bool take_header_byte(Framing& f, uint8_t byte, size_t input_offset, HelloPeek& out) {
  const size_t i = f.have++;
  f.header[i] = byte;
  f.header_offsets[i] = input_offset;
  if (i == 0 && byte != kHandshakeClientHello) {
    out = failure(HelloStatus::kError, input_offset,
                  "handshake message " + std::to_string(byte) + ", not a ClientHello");
    return false;
  }
  size_t at_least = 0;
  for (size_t k = 1; k <= i; ++k) at_least |= size_t{f.header[k]} << (8 * (3 - k));
  if (i > 0 && kHandshakeHeader + at_least > kMaxClientHello) {
    out = failure(HelloStatus::kError, f.header_offsets[1],
                  "ClientHello over " + std::to_string(kMaxClientHello) + " bytes");
    return false;
  }
  if (i == 3) f.total = kHandshakeHeader + at_least;
  return true;
}

// Walks the records until the message is whole. kNeedMore, kError and kNotTls come back in
// `out`; true when the message is whole.
bool walk_records(std::string_view bytes, Framing& f, HelloPeek& out) {
  size_t pos = 0;
  for (size_t record = 0;; ++record) {
    if (pos == bytes.size()) return false;
    const HelloStatus foreign = record == 0 ? HelloStatus::kNotTls : HelloStatus::kError;
    if (record == kMaxClientHelloRecords) {
      out = failure(HelloStatus::kError, pos, "ClientHello spread over too many records");
      return false;
    }
    if (static_cast<uint8_t>(bytes[pos]) != kContentHandshake) {
      out = failure(foreign, pos, "record of another type inside the ClientHello");
      return false;
    }
    if (bytes.size() > pos + 1 && bytes[pos + 1] != 3) {
      out = failure(foreign, pos + 1, "record version not 3.x");
      return false;
    }
    // The length's high byte alone can already exceed a record's limit.
    if (bytes.size() > pos + 3 && static_cast<uint8_t>(bytes[pos + 3]) > kMaxRecordPayload >> 8) {
      out = failure(HelloStatus::kError, pos + 3, "record over 16384 bytes");
      return false;
    }
    if (bytes.size() < pos + kRecordHeader) return false;
    const size_t length =
        size_t{static_cast<uint8_t>(bytes[pos + 3])} << 8 | static_cast<uint8_t>(bytes[pos + 4]);
    if (length == 0 || length > kMaxRecordPayload) {
      out = failure(HelloStatus::kError, pos + 3,
                    length == 0 ? "empty handshake record" : "record over 16384 bytes");
      return false;
    }
    const size_t start = pos + kRecordHeader;
    const size_t available = std::min(length, bytes.size() - start);
    Fragment& fragment = f.fragments[f.count++];
    fragment = {f.have, start, 0};
    size_t taken = 0;
    for (; taken < available && f.have < kHandshakeHeader; ++taken) {
      if (!take_header_byte(f, static_cast<uint8_t>(bytes[start + taken]), start + taken, out)) {
        return false;
      }
    }
    if (f.total != 0) {
      const size_t rest = std::min(available - taken, f.total - f.have);
      taken += rest;
      f.have += rest;
    }
    fragment.length = taken;
    if (f.total != 0 && f.have == f.total) return true;
    if (available < length) return false;
    pos = start + length;
  }
}

}  // namespace

HelloPeek peek_client_hello(std::string_view bytes) {
  Framing framing;
  HelloPeek peek;
  if (!walk_records(bytes, framing, peek)) return peek;
  std::string joined;  // only when the message spans records
  std::string_view message = bytes.substr(framing.fragments[0].input_offset, framing.total);
  if (framing.count > 1) {
    joined.reserve(framing.total);
    for (size_t i = 0; i < framing.count; ++i) {
      const Fragment& f = framing.fragments[i];
      joined.append(bytes.substr(f.input_offset, f.length));
    }
    message = joined;
  }
  Fault fault;
  if (!read_hello(message, peek, fault)) {
    return failure(HelloStatus::kError, framing.input_offset(fault.offset), fault.why);
  }
  peek.status = HelloStatus::kDone;
  return peek;
}

}  // namespace usher::l4
