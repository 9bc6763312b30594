#include "proxy/l7/request_key.h"

#include "balance/picker.h"
#include "codec/http1/head_parser.h"
#include "route/fields.h"

namespace usher::proxy::l7 {

uint64_t request_key_hash(const http1::RequestHead& head, const config::HashKey& key,
                          std::string_view client_ip) {
  std::string_view value;
  switch (key.kind) {
    case config::HashKey::Kind::kClientIp:
      break;
    case config::HashKey::Kind::kUri:
      value = head.target;
      break;
    case config::HashKey::Kind::kQuery: {
      std::string_view path, query;
      route::split_target(head.target, path, query);
      value = route::find_query(query, key.name).value_or(std::string_view());
      break;
    }
    case config::HashKey::Kind::kCookie:
      value = route::find_cookie(head.headers, key.name).value_or(std::string_view());
      break;
    case config::HashKey::Kind::kHeader:
      for (const http1::Header& h : head.headers) {
        if (http1::iequals(h.name, key.name)) {
          value = h.value;
          break;
        }
      }
      break;
  }
  return balance::hash_key(value.empty() ? client_ip : value);
}

}  // namespace usher::proxy::l7
