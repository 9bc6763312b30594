// The start line of a head: a request's method, target and version, or a response's version,
// status code and reason phrase.
#include <cstdint>

#include "codec/http1/chars.h"
#include "codec/http1/head_internal.h"
#include "codec/http1/head_parser.h"

namespace usher::http1 {

namespace {

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

}  // namespace

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

}  // namespace usher::http1
