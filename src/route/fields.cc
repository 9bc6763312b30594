#include "route/fields.h"

#include "codec/http1/head_parser.h"

namespace usher::route {

namespace {

// The value of the first "name=value" element of a `separator`-split list with that name; an
// element without '=' counts as the name with an empty value.
std::optional<std::string_view> find_pair(std::string_view list, char separator,
                                          std::string_view name) {
  while (!list.empty()) {
    size_t end = list.find(separator);
    std::string_view element = http1::trim_ows(list.substr(0, end));
    size_t eq = element.find('=');
    if (element.substr(0, eq) == name) {
      return eq == std::string_view::npos ? std::string_view() : element.substr(eq + 1);
    }
    if (end == std::string_view::npos) break;
    list.remove_prefix(end + 1);
  }
  return std::nullopt;
}

}  // namespace

std::optional<std::string_view> find_cookie(std::string_view cookie_header, std::string_view name) {
  return find_pair(cookie_header, ';', name);
}

std::optional<std::string_view> find_cookie(std::span<const http1::Header> headers,
                                            std::string_view name) {
  for (const http1::Header& h : headers) {
    if (h.id != http1::HeaderId::kCookie) continue;
    if (auto value = find_cookie(h.value, name)) return value;
  }
  return std::nullopt;
}

std::optional<std::string_view> find_query(std::string_view query, std::string_view name) {
  return find_pair(query, '&', name);
}

void split_target(std::string_view target, std::string_view& path, std::string_view& query) {
  if (!target.starts_with('/')) {
    size_t scheme = target.find("://");
    size_t slash = scheme == std::string_view::npos ? target.size() : target.find('/', scheme + 3);
    size_t question = target.find('?', scheme == std::string_view::npos ? 0 : scheme + 3);
    target = slash < question                     ? target.substr(slash)
             : question != std::string_view::npos ? target.substr(question)
                                                  : std::string_view();
  }
  target = target.substr(0, target.find('#'));
  size_t question = target.find('?');
  path = target.substr(0, question);
  query = question == std::string_view::npos ? std::string_view() : target.substr(question + 1);
}

std::string_view normalize_host(std::string_view host_field, char (&out)[kMaxHost]) {
  std::string_view host = host_field;
  if (host.starts_with('[')) {
    host = host.substr(0, host.find(']') + 1);
  } else {
    host = host.substr(0, host.find(':'));
  }
  if (host.ends_with('.')) host.remove_suffix(1);
  if (host.size() > kMaxHost) return {};
  for (size_t i = 0; i < host.size(); ++i) {
    char c = host[i];
    out[i] = c >= 'A' && c <= 'Z' ? static_cast<char>(c + ('a' - 'A')) : c;
  }
  return {out, host.size()};
}

}  // namespace usher::route
