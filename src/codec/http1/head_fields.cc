// The header fields of a head: their syntax, which known field each is, and the framing facts
// (Host, Content-Length, Transfer-Encoding, Connection, Upgrade, Expect) they carry together.
#include <algorithm>
#include <array>
#include <cstdint>

#include "codec/http1/chars.h"
#include "codec/http1/head_internal.h"
#include "codec/http1/head_parser.h"

namespace usher::http1 {

namespace {

struct KnownField {
  std::string_view name;  // lowercase letters and '-'
  HeaderId id;
};

constexpr KnownField kKnownFields[] = {
    {"host", HeaderId::kHost},
    {"content-length", HeaderId::kContentLength},
    {"transfer-encoding", HeaderId::kTransferEncoding},
    {"connection", HeaderId::kConnection},
    {"keep-alive", HeaderId::kKeepAlive},
    {"proxy-connection", HeaderId::kProxyConnection},
    {"te", HeaderId::kTe},
    {"upgrade", HeaderId::kUpgrade},
    {"expect", HeaderId::kExpect},
    {"x-forwarded-for", HeaderId::kXForwardedFor},
    {"x-forwarded-proto", HeaderId::kXForwardedProto},
    {"via", HeaderId::kVia},
    {"trailer", HeaderId::kTrailer},
    {"idempotency-key", HeaderId::kIdempotencyKey},
    {"cookie", HeaderId::kCookie},
    {"set-cookie", HeaderId::kSetCookie},
    {"x-request-id", HeaderId::kXRequestId},
    {"x-forwarded-host", HeaderId::kXForwardedHost},
    {"x-forwarded-port", HeaderId::kXForwardedPort},
    {"forwarded", HeaderId::kForwarded},
    {"traceparent", HeaderId::kTraceparent},
    {"tracestate", HeaderId::kTracestate},
};

constexpr size_t kLongestKnownField = 17;
constexpr size_t kMostKnownFieldsOfOneLength = 4;

// For each length, the known fields of that length (indexes + 1; 0 ends the list), so that a
// field is compared with at most four names instead of twenty.
constexpr auto kKnownFieldsByLength = [] {
  std::array<std::array<uint8_t, kMostKnownFieldsOfOneLength + 1>, kLongestKnownField + 1> table{};
  for (size_t i = 0; i < std::size(kKnownFields); ++i) {
    auto& slots = table[kKnownFields[i].name.size()];
    size_t used = 0;
    while (slots[used] != 0) ++used;
    slots[used] = static_cast<uint8_t>(i + 1);
  }
  return table;
}();

// `name` is made of token characters and `lowered` of lowercase letters and '-': setting bit
// 0x20 lowers a letter and maps no other token character onto a letter or '-', so this is an
// exact case-insensitive comparison.
bool equals_lowered(std::string_view name, std::string_view lowered) {
  for (size_t i = 0; i < name.size(); ++i) {
    if ((name[i] | 0x20) != lowered[i]) return false;
  }
  return true;
}

HeaderId classify(std::string_view name) {
  if (name.size() > kLongestKnownField) return HeaderId::kOther;
  for (uint8_t slot : kKnownFieldsByLength[name.size()]) {
    if (slot == 0) break;
    const KnownField& known = kKnownFields[slot - 1];
    if (equals_lowered(name, known.name)) return known.id;
  }
  return HeaderId::kOther;
}

// Calls on_element for each non-empty element of a comma-separated list (RFC 9110 §5.6.1).
template <typename F>
bool for_each_element(std::string_view list, F&& on_element) {
  size_t pos = 0;
  while (pos <= list.size()) {
    size_t comma = list.find(',', pos);
    if (comma == std::string_view::npos) comma = list.size();
    std::string_view element = trim_ows(list.substr(pos, comma - pos));
    if (!element.empty() && !on_element(element)) return false;
    pos = comma + 1;
  }
  return true;
}

bool is_token_string(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!is_token(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

// One decimal number per field. Repeated fields must agree and are forwarded as one; a list in
// one field ("5, 5") is refused even though RFC 9110 §8.6 would allow merging it, because
// parsers disagree on lists and nothing legitimate sends them.
bool parse_content_length(std::string_view value, FieldFacts& facts, Failure& failure,
                          size_t offset) {
  bool ok = !value.empty() && value.size() <= 18;
  uint64_t n = 0;
  for (char c : value) {
    if (c < '0' || c > '9') ok = false;
    n = n * 10 + static_cast<uint64_t>(c - '0');
  }
  if (!ok || (facts.content_length_set && facts.content_length != n)) {
    failure = {400, "invalid or conflicting Content-Length", offset};
    return false;
  }
  facts.content_length = n;
  facts.content_length_set = true;
  return true;
}

bool parse_transfer_encoding(std::string_view value, FieldFacts& facts, Failure& failure,
                             size_t offset) {
  facts.transfer_encoding = value;
  facts.te_chunked_last = false;
  bool any = false;
  bool ok = for_each_element(value, [&](std::string_view coding) {
    if (!is_token_string(coding)) return false;
    any = true;
    facts.te_chunked_last = iequals(coding, "chunked");
    if (facts.te_chunked_last) ++facts.chunked_count;
    return true;
  });
  if (!ok || !any) {
    failure = {400, "invalid Transfer-Encoding", offset};
    return false;
  }
  return true;
}

bool parse_connection(std::string_view value, FieldFacts& facts, Failure& failure, size_t offset) {
  bool ok = for_each_element(value, [&](std::string_view token) {
    if (!is_token_string(token)) return false;
    if (iequals(token, "close")) {
      facts.conn_close = true;
    } else if (iequals(token, "keep-alive")) {
      facts.conn_keep_alive = true;
    } else if (iequals(token, "upgrade")) {
      facts.conn_upgrade = true;
    } else {
      if (facts.connection_token_count == kMaxConnectionTokens) return false;
      facts.connection_tokens[facts.connection_token_count++] = token;
    }
    return true;
  });
  if (!ok) failure = {400, "invalid Connection header", offset};
  return ok;
}

}  // namespace

// Parses the header lines in [pos, end) into scratch. `end` points at the final empty line.
bool parse_fields(std::string_view data, size_t pos, size_t end, const HeadLimits& limits,
                  int too_many_status, std::span<Header> scratch, size_t& count, Failure& failure) {
  count = 0;
  const size_t max_headers = std::min(limits.max_headers, scratch.size());
  while (pos < end) {
    size_t cr = data.find('\r', pos);  // every line ends in CRLF: find_head checked it
    auto c = static_cast<unsigned char>(data[pos]);
    if (c == ' ' || c == '\t') {
      failure = {400, "obsolete line folding", pos};
      return false;
    }
    size_t name_end = pos;
    while (name_end < cr && is_token(static_cast<unsigned char>(data[name_end]))) ++name_end;
    if (name_end == cr || data[name_end] != ':') {
      char bad = name_end < cr ? data[name_end] : '\r';
      const char* reason = (bad == ' ' || bad == '\t') ? "whitespace between field name and colon"
                           : name_end == cr            ? "header line without colon"
                                                       : "invalid character in field name";
      failure = {400, reason, name_end};
      return false;
    }
    if (name_end == pos) {
      failure = {400, "empty field name", pos};
      return false;
    }
    size_t value_begin = name_end + 1;
    while (value_begin < cr && (data[value_begin] == ' ' || data[value_begin] == '\t')) {
      ++value_begin;
    }
    for (size_t i = value_begin; i < cr; ++i) {
      if (!is_field_value(static_cast<unsigned char>(data[i]))) {
        failure = {400, "invalid character in field value", i};
        return false;
      }
    }
    if (cr + 1 >= data.size() || data[cr + 1] != '\n') {
      failure = {400, "CR not followed by LF", cr};
      return false;
    }
    size_t value_end = cr;
    while (value_end > value_begin && (data[value_end - 1] == ' ' || data[value_end - 1] == '\t')) {
      --value_end;
    }
    if (count == max_headers) {
      failure = {too_many_status, "too many header fields", pos};
      return false;
    }
    std::string_view name = data.substr(pos, name_end - pos);
    scratch[count++] =
        Header{name, data.substr(value_begin, value_end - value_begin), classify(name), false};
    pos = cr + 2;
  }
  return true;
}

bool gather_facts(std::string_view data, std::span<Header> headers, FieldFacts& facts,
                  Failure& failure) {
  for (Header& h : headers) {
    auto offset = static_cast<size_t>(h.name.data() - data.data());
    switch (h.id) {
      case HeaderId::kHost:
        ++facts.host_count;
        break;
      case HeaderId::kContentLength:
        ++facts.content_length_fields;
        if (!parse_content_length(h.value, facts, failure, offset)) return false;
        break;
      case HeaderId::kTransferEncoding:
        ++facts.transfer_encoding_fields;
        if (!parse_transfer_encoding(h.value, facts, failure, offset)) return false;
        break;
      case HeaderId::kConnection:
        if (!parse_connection(h.value, facts, failure, offset)) return false;
        break;
      case HeaderId::kUpgrade:
        facts.upgrade = h.value;
        break;
      case HeaderId::kExpect:
        if (iequals(h.value, "100-continue")) facts.expect_continue = true;
        break;
      default:
        break;
    }
  }
  for (Header& h : headers) {
    for (size_t i = 0; i < facts.connection_token_count; ++i) {
      if (iequals(h.name, facts.connection_tokens[i])) h.connection_listed = true;
    }
  }
  if (facts.transfer_encoding_fields > 1) {
    failure = {400, "multiple Transfer-Encoding fields", 0};
    return false;
  }
  if (facts.chunked_count > 1) {
    failure = {400, "chunked applied more than once", 0};
    return false;
  }
  if (facts.transfer_encoding_fields > 0 && facts.content_length_fields > 0) {
    failure = {400, "both Content-Length and Transfer-Encoding", 0};
    return false;
  }
  return true;
}

}  // namespace usher::http1
