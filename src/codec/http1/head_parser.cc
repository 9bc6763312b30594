#include "codec/http1/head_parser.h"

#include <array>
#include <cstdint>
#include <cstring>

#include "codec/http1/chars.h"

namespace usher::http1 {

namespace {

constexpr size_t kMaxLeadingEmptyLines = 8;
constexpr size_t kMaxConnectionTokens = 16;

char lower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c;
}

struct Failure {
  int status;
  const char* reason;
  size_t offset;
};

// Where the head lies in the buffer once its terminating empty line has been seen.
struct HeadSpan {
  size_t begin = 0;  // first byte of the start line
  size_t end = 0;    // one past the empty line's LF
};

// Finds the end of a head, rejecting bare LF as soon as it arrives so that a client sending
// LF-only lines gets its 400 at once rather than after the header timeout.
ParseStatus find_head(std::string_view data, const HeadLimits& limits, bool skip_leading_crlf,
                      int too_long_line_status, int too_large_status, size_t& scanned,
                      HeadSpan& span, Failure& failure) {
  size_t begin = 0;
  if (skip_leading_crlf) {
    size_t empty_lines = 0;
    while (begin + 1 < data.size() && data[begin] == '\r' && data[begin + 1] == '\n') {
      begin += 2;
      if (++empty_lines > kMaxLeadingEmptyLines) {
        failure = {400, "too many empty lines before the request line", begin};
        return ParseStatus::kError;
      }
    }
    if (begin + 1 == data.size() && data[begin] == '\r') return ParseStatus::kIncomplete;
  }
  size_t pos = std::max(scanned, begin);
  const char* base = data.data();
  while (true) {
    const void* hit =
        pos < data.size() ? std::memchr(base + pos, '\n', data.size() - pos) : nullptr;
    if (hit == nullptr) {
      scanned = pos;
      bool in_start_line = pos == begin;
      if (in_start_line && data.size() - begin > limits.max_start_line) {
        failure = {too_long_line_status, "start line too long", data.size()};
        return ParseStatus::kError;
      }
      if (data.size() - begin > limits.max_head_bytes) {
        failure = {too_large_status, "header section too large", data.size()};
        return ParseStatus::kError;
      }
      return ParseStatus::kIncomplete;
    }
    size_t lf = static_cast<size_t>(static_cast<const char*>(hit) - base);
    if (lf == 0 || data[lf - 1] != '\r') {
      failure = {400, "bare LF without CR", lf};
      return ParseStatus::kError;
    }
    if (pos == begin && lf - begin > limits.max_start_line) {
      failure = {too_long_line_status, "start line too long", lf};
      return ParseStatus::kError;
    }
    if (lf + 1 - begin > limits.max_head_bytes) {
      failure = {too_large_status, "header section too large", lf};
      return ParseStatus::kError;
    }
    bool empty_line = lf - 1 == pos;
    if (empty_line) {
      if (pos == begin) {
        failure = {400, "empty start line", pos};
        return ParseStatus::kError;
      }
      span = {begin, lf + 1};
      scanned = lf + 1;
      return ParseStatus::kComplete;
    }
    pos = lf + 1;
  }
}

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
};

constexpr size_t kLongestKnownField = 17;
constexpr size_t kMostKnownFieldsOfOneLength = 3;

// For each length, the known fields of that length (indexes + 1; 0 ends the list), so that a
// field is compared with at most three names instead of twenty.
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

// Framing facts gathered from all fields of a head before the framing decision.
struct FieldFacts {
  size_t host_count = 0;
  size_t content_length_fields = 0;
  bool content_length_set = false;
  uint64_t content_length = 0;
  size_t transfer_encoding_fields = 0;
  std::string_view transfer_encoding;
  bool te_chunked_last = false;
  size_t chunked_count = 0;
  bool conn_close = false;
  bool conn_keep_alive = false;
  bool conn_upgrade = false;
  std::string_view upgrade;
  bool expect_continue = false;
  std::string_view connection_tokens[kMaxConnectionTokens];
  size_t connection_token_count = 0;
};

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

// "HTTP/1.1" -> 1, "HTTP/1.0" -> 0; -1 malformed; -2 a well-formed version other than 1.x.
int parse_version(std::string_view v) {
  if (v.size() != 8 || v.substr(0, 5) != "HTTP/" || v[6] != '.' || v[5] < '0' || v[5] > '9' ||
      v[7] < '0' || v[7] > '9') {
    return -1;
  }
  if (v[5] != '1') return -2;
  return v[7] == '0' ? 0 : 1;
}

Method classify_method(std::string_view m) {
  struct Known {
    std::string_view name;
    Method method;
  };
  static constexpr Known kKnown[] = {
      {"GET", Method::kGet},         {"HEAD", Method::kHead},     {"POST", Method::kPost},
      {"PUT", Method::kPut},         {"DELETE", Method::kDelete}, {"OPTIONS", Method::kOptions},
      {"CONNECT", Method::kConnect}, {"TRACE", Method::kTrace},
  };
  for (const Known& known : kKnown) {
    if (known.name == m) return known.method;
  }
  return Method::kOther;
}

bool valid_target_form(std::string_view target, Method method) {
  if (target.front() == '/') return true;
  if (target == "*") return method == Method::kOptions;
  auto scheme_end = target.find("://");
  if (scheme_end == std::string_view::npos) return false;
  std::string_view scheme = target.substr(0, scheme_end);
  return iequals(scheme, "http") || iequals(scheme, "https");
}

bool parse_request_line(std::string_view line, size_t offset, RequestHead& out, Failure& failure) {
  size_t sp1 = 0;
  while (sp1 < line.size() && is_token(static_cast<unsigned char>(line[sp1]))) ++sp1;
  if (sp1 == 0 || sp1 == line.size() || line[sp1] != ' ') {
    failure = {400, "invalid method", offset + sp1};
    return false;
  }
  size_t target_begin = sp1 + 1;
  size_t sp2 = target_begin;
  while (sp2 < line.size() && kChars.target[static_cast<unsigned char>(line[sp2])]) ++sp2;
  if (sp2 == target_begin || sp2 == line.size() || line[sp2] != ' ') {
    failure = {400, "invalid request target", offset + sp2};
    return false;
  }
  out.method_text = line.substr(0, sp1);
  out.method = classify_method(out.method_text);
  out.target = line.substr(target_begin, sp2 - target_begin);
  int minor = parse_version(line.substr(sp2 + 1));
  if (minor == -2) {
    failure = {505, "HTTP version not supported", offset + sp2 + 1};
    return false;
  }
  if (minor < 0) {
    failure = {400, "invalid HTTP version", offset + sp2 + 1};
    return false;
  }
  out.version_minor = static_cast<uint8_t>(minor);
  if (out.method == Method::kConnect) {
    failure = {501, "CONNECT is not supported by a reverse proxy", offset};
    return false;
  }
  if (!valid_target_form(out.target, out.method)) {
    failure = {400, "invalid request-target form", offset + target_begin};
    return false;
  }
  return true;
}

bool parse_status_line(std::string_view line, size_t offset, ResponseHead& out, Failure& failure) {
  int minor = parse_version(line.substr(0, 8));
  if (minor < 0 || line.size() < 12 || line[8] != ' ') {
    failure = {502, "invalid status line", offset};
    return false;
  }
  int status = 0;
  for (size_t i = 9; i < 12; ++i) {
    if (line[i] < '0' || line[i] > '9') {
      failure = {502, "invalid status code", offset + i};
      return false;
    }
    status = status * 10 + (line[i] - '0');
  }
  if (status < 100 || (line.size() > 12 && line[12] != ' ')) {
    failure = {502, "invalid status code", offset + 9};
    return false;
  }
  std::string_view reason = line.size() > 13 ? line.substr(13) : std::string_view{};
  for (size_t i = 0; i < reason.size(); ++i) {
    if (!is_field_value(static_cast<unsigned char>(reason[i]))) {
      failure = {502, "invalid character in reason phrase", offset + 13 + i};
      return false;
    }
  }
  out.version_minor = static_cast<uint8_t>(minor);
  out.status = status;
  out.reason = reason;
  return true;
}

void set_error(ParseError& error, const Failure& failure) {
  error = ParseError{failure.status, failure.reason, failure.offset};
}

}  // namespace

std::string_view trim_ows(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

ParseStatus parse_request(std::string_view data, const HeadLimits& limits,
                          std::span<Header> scratch, size_t& scanned, RequestHead& out,
                          ParseError& error) {
  HeadSpan span;
  Failure failure{};
  ParseStatus status = find_head(data, limits, true, 414, 431, scanned, span, failure);
  if (status != ParseStatus::kComplete) {
    if (status == ParseStatus::kError) set_error(error, failure);
    return status;
  }
  size_t line_end = data.find('\r', span.begin);
  out = RequestHead{};
  if (!parse_request_line(data.substr(span.begin, line_end - span.begin), span.begin, out,
                          failure)) {
    set_error(error, failure);
    return ParseStatus::kError;
  }
  size_t count = 0;
  if (!parse_fields(data, line_end + 2, span.end - 2, limits, 431, scratch, count, failure)) {
    set_error(error, failure);
    return ParseStatus::kError;
  }
  out.headers = scratch.first(count);
  FieldFacts facts;
  if (!gather_facts(data, out.headers, facts, failure)) {
    set_error(error, failure);
    return ParseStatus::kError;
  }
  if (facts.host_count > 1 || (facts.host_count == 0 && out.version_minor == 1)) {
    set_error(error, {400, facts.host_count ? "multiple Host fields" : "missing Host", 0});
    return ParseStatus::kError;
  }
  if (facts.transfer_encoding_fields > 0) {
    if (out.version_minor == 0) {
      set_error(error, {400, "Transfer-Encoding in an HTTP/1.0 request", 0});
      return ParseStatus::kError;
    }
    if (!facts.te_chunked_last) {
      set_error(error, {400, "request Transfer-Encoding does not end in chunked", 0});
      return ParseStatus::kError;
    }
    out.framing = {Framing::Kind::kChunked, 0, facts.transfer_encoding};
  } else if (facts.content_length_set) {
    out.framing = {Framing::Kind::kLength, facts.content_length, {}};
  }
  out.keep_alive =
      out.version_minor == 1 ? !facts.conn_close : (facts.conn_keep_alive && !facts.conn_close);
  out.expect_continue = facts.expect_continue && out.version_minor == 1;
  out.upgrade = facts.conn_upgrade && !facts.upgrade.empty() && out.version_minor == 1;
  out.upgrade_protocol = facts.upgrade;
  out.head_bytes = span.end;
  return ParseStatus::kComplete;
}

ParseStatus parse_response(std::string_view data, const HeadLimits& limits,
                           std::span<Header> scratch, Method request_method, size_t& scanned,
                           ResponseHead& out, ParseError& error) {
  HeadSpan span;
  Failure failure{};
  ParseStatus status = find_head(data, limits, false, 502, 502, scanned, span, failure);
  if (status != ParseStatus::kComplete) {
    if (status == ParseStatus::kError) set_error(error, {502, failure.reason, failure.offset});
    return status;
  }
  size_t line_end = data.find('\r', span.begin);
  out = ResponseHead{};
  if (!parse_status_line(data.substr(span.begin, line_end - span.begin), span.begin, out,
                         failure)) {
    set_error(error, failure);
    return ParseStatus::kError;
  }
  size_t count = 0;
  FieldFacts facts;
  if (!parse_fields(data, line_end + 2, span.end - 2, limits, 502, scratch, count, failure) ||
      !gather_facts(data, scratch.first(count), facts, failure)) {
    set_error(error, {502, failure.reason, failure.offset});
    return ParseStatus::kError;
  }
  out.headers = scratch.first(count);
  out.keep_alive =
      out.version_minor == 1 ? !facts.conn_close : (facts.conn_keep_alive && !facts.conn_close);
  bool bodiless =
      request_method == Method::kHead || out.status < 200 || out.status == 204 || out.status == 304;
  if (bodiless) {
    out.framing = {};
  } else if (facts.transfer_encoding_fields > 0) {
    // Without chunked last the body is delimited by the close (RFC 9112 §6.3) and still in the
    // named codings: a cut body looks complete, and nothing legitimate sends one. Refused, as
    // HAProxy refuses every coding but chunked; "gzip, chunked" passes with its field intact.
    if (!facts.te_chunked_last) {
      const auto offset = static_cast<size_t>(facts.transfer_encoding.data() - data.data());
      set_error(error, {502, "response Transfer-Encoding does not end in chunked", offset});
      return ParseStatus::kError;
    }
    out.framing = {Framing::Kind::kChunked, 0, facts.transfer_encoding};
  } else if (facts.content_length_set) {
    out.framing = {Framing::Kind::kLength, facts.content_length, {}};
  } else {
    out.framing = {Framing::Kind::kUntilClose, 0, {}};
    out.keep_alive = false;
  }
  out.head_bytes = span.end;
  return ParseStatus::kComplete;
}

}  // namespace usher::http1
