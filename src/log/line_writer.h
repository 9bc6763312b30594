#pragma once
// Pieces of access-log lines shared by the request and the connection formats: JSON strings
// written into room reserved up front, and nginx's escaping for its text formats.
#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <cstring>
#include <string>
#include <string_view>

namespace usher::log {

// Bytes a JSON string holds as they are; a table, since every logged byte is looked up.
inline constexpr std::array<bool, 256> kJsonPlain = [] {
  std::array<bool, 256> plain{};
  for (int c = 0x20; c < 0x7f; ++c) plain[c] = c != '"' && c != '\\';
  return plain;
}();

// nginx escapes '"', '\' and non-printable bytes in combined logs as \xHH.
inline void combined_string(std::string& out, std::string_view s) {
  constexpr char kHex[] = "0123456789ABCDEF";
  if (s.empty()) {
    out += '-';
    return;
  }
  for (unsigned char c : s) {
    if (c == '"' || c == '\\' || c < 0x20 || c >= 0x7f) {
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 0xf];
    } else {
      out += static_cast<char>(c);
    }
  }
}

// Writes one line into room reserved at the end of `out` beforehand, so that each piece is a
// store or a memcpy instead of a string append with a capacity check of its own.
class LineWriter {
 public:
  LineWriter(std::string& out, size_t most) : out_(out) {
    const size_t start = out.size();
    out.resize(start + most);
    p_ = out.data() + start;
  }
  ~LineWriter() { out_.resize(static_cast<size_t>(p_ - out_.data())); }
  LineWriter(const LineWriter&) = delete;
  LineWriter& operator=(const LineWriter&) = delete;

  // The most a JSON string of `bytes` bytes can take: every byte escaped as \u00XX.
  static constexpr size_t json_bound(size_t bytes) { return 2 + 6 * bytes; }

  void put(char c) { *p_++ = c; }
  void put(std::string_view s) {
    std::memcpy(p_, s.data(), s.size());
    p_ += s.size();
  }
  void number(uint64_t value) { p_ = std::to_chars(p_, p_ + 20, value).ptr; }

  // Milliseconds with three decimals ("12.346"), from seconds.
  void millis(double seconds) {
    const auto micros = static_cast<uint64_t>(std::llround(std::max(seconds, 0.0) * 1e6));
    number(micros / 1000);
    fraction(static_cast<unsigned>(micros % 1000));
  }
  // A field after the first: `key` carries its comma and colon (`,"pool":`).
  void text_field(std::string_view key, std::string_view value) {
    put(key);
    json_string(value);
  }
  void number_field(std::string_view key, uint64_t value) {
    put(key);
    number(value);
  }
  // Below zero: null (the step did not happen).
  void millis_field(std::string_view key, double seconds) {
    put(key);
    if (seconds >= 0) {
      millis(seconds);
    } else {
      put("null");
    }
  }
  // ".045"
  void fraction(unsigned thousandths) {
    p_[0] = '.';
    p_[1] = static_cast<char>('0' + thousandths / 100);
    p_[2] = static_cast<char>('0' + thousandths / 10 % 10);
    p_[3] = static_cast<char>('0' + thousandths % 10);
    p_ += 4;
  }

  // JSON string contents: quotes, backslashes and control bytes escaped; bytes above 0x7f are
  // escaped as Latin-1 code points, so that any header bytes still make valid UTF-8 JSON.
  void json_string(std::string_view s) {
    constexpr char kHex[] = "0123456789abcdef";
    put('"');
    const char* at = s.data();
    const char* end = at + s.size();
    while (at < end) {
      // Nearly every value needs no escape: copy each plain run at once.
      const char* plain = at;
      while (plain < end && kJsonPlain[static_cast<unsigned char>(*plain)]) ++plain;
      put(std::string_view(at, static_cast<size_t>(plain - at)));
      if (plain == end) break;
      const auto c = static_cast<unsigned char>(*plain);
      if (c == '"' || c == '\\') {
        put('\\');
        put(static_cast<char>(c));
      } else {
        put("\\u00");
        put(kHex[c >> 4]);
        put(kHex[c & 0xf]);
      }
      at = plain + 1;
    }
    put('"');
  }

 private:
  std::string& out_;
  char* p_;
};

}  // namespace usher::log
