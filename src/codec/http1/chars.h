#pragma once
// Character classes of RFC 9110 §5.6 as lookup tables: one load per byte on the hot path.
#include <array>
#include <cstdint>

namespace usher::http1 {

struct CharTable {
  std::array<bool, 256> token{};        // tchar
  std::array<bool, 256> field_value{};  // VCHAR / obs-text / SP / HTAB
  std::array<bool, 256> target{};       // visible ASCII allowed in a request-target
  std::array<int8_t, 256> hex{};        // value of a hex digit, -1 otherwise
};

constexpr CharTable make_char_table() {
  CharTable t{};
  for (int c = 0; c < 256; ++c) {
    bool alnum = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    bool tchar_punct = false;
    for (char p : {'!', '#', '$', '%', '&', '\'', '*', '+', '-', '.', '^', '_', '`', '|', '~'}) {
      if (c == p) tchar_punct = true;
    }
    t.token[c] = alnum || tchar_punct;
    t.field_value[c] = (c >= 0x21 && c <= 0x7e) || c >= 0x80 || c == ' ' || c == '\t';
    t.target[c] = c >= 0x21 && c <= 0x7e;
    t.hex[c] = (c >= '0' && c <= '9')   ? static_cast<int8_t>(c - '0')
               : (c >= 'a' && c <= 'f') ? static_cast<int8_t>(c - 'a' + 10)
               : (c >= 'A' && c <= 'F') ? static_cast<int8_t>(c - 'A' + 10)
                                        : int8_t{-1};
  }
  return t;
}

inline constexpr CharTable kChars = make_char_table();

inline bool is_token(unsigned char c) {
  return kChars.token[c];
}
inline bool is_field_value(unsigned char c) {
  return kChars.field_value[c];
}

}  // namespace usher::http1
