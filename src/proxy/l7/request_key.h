#pragma once
// The key a hash-based pool balances on, taken from a request head (`hash_key` in the config).
#include <string_view>

#include "codec/http1/message.h"
#include "config/config.h"

namespace usher::proxy::l7 {

// Hash of the configured part of the request; a request without it falls back to its client IP
// (the real client's, after trusted proxies), so it still sticks to one backend.
uint64_t request_key_hash(const http1::RequestHead& head, const config::HashKey& key,
                          std::string_view client_ip);

}  // namespace usher::proxy::l7
