#include "codec/http1/head_parser.h"

#include <algorithm>
#include <cstring>

#include "codec/http1/head_internal.h"

namespace usher::http1 {

namespace {

constexpr size_t kMaxLeadingEmptyLines = 8;

char lower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c;
}

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
