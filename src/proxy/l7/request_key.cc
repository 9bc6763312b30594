#include "proxy/l7/request_key.h"

#include "balance/picker.h"
#include "codec/http1/head_parser.h"

namespace usher::proxy::l7 {

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// The value of the first "name=value" element of a `separator`-split list whose name matches.
template <typename F>
std::string_view find_pair(std::string_view list, char separator, std::string_view name,
                           F&& equal) {
  while (!list.empty()) {
    size_t end = list.find(separator);
    std::string_view element = trim(list.substr(0, end));
    size_t eq = element.find('=');
    if (eq != std::string_view::npos && equal(element.substr(0, eq), name))
      return element.substr(eq + 1);
    if (end == std::string_view::npos) break;
    list.remove_prefix(end + 1);
  }
  return {};
}

}  // namespace

std::string_view find_cookie(std::string_view cookie_header, std::string_view name) {
  return find_pair(cookie_header, ';', name,
                   [](std::string_view a, std::string_view b) { return a == b; });
}

std::string_view find_query(std::string_view target, std::string_view name) {
  size_t question = target.find('?');
  if (question == std::string_view::npos) return {};
  std::string_view query = target.substr(question + 1);
  query = query.substr(0, query.find('#'));
  return find_pair(query, '&', name, [](std::string_view a, std::string_view b) { return a == b; });
}

uint64_t request_key_hash(const http1::RequestHead& head, const config::HashKey& key,
                          std::string_view client_ip) {
  std::string_view value;
  switch (key.kind) {
    case config::HashKey::Kind::kClientIp:
      break;
    case config::HashKey::Kind::kUri:
      value = head.target;
      break;
    case config::HashKey::Kind::kQuery:
      value = find_query(head.target, key.name);
      break;
    case config::HashKey::Kind::kHeader:
    case config::HashKey::Kind::kCookie:
      for (const http1::Header& h : head.headers) {
        if (key.kind == config::HashKey::Kind::kHeader && http1::iequals(h.name, key.name)) {
          value = h.value;
          break;
        }
        if (key.kind == config::HashKey::Kind::kCookie && http1::iequals(h.name, "cookie")) {
          value = find_cookie(h.value, key.name);
          if (!value.empty()) break;
        }
      }
      break;
  }
  return balance::hash_key(value.empty() ? client_ip : value);
}

}  // namespace usher::proxy::l7
