#pragma once
// Reading the parts of a request that routes and hash keys look at. Views into the head.
#include <optional>
#include <span>
#include <string_view>

#include "codec/http1/message.h"

namespace usher::route {

// The value of cookie `name` in one Cookie header value; nullopt when absent.
std::optional<std::string_view> find_cookie(std::string_view cookie_header, std::string_view name);
// The same over all Cookie fields of a head.
std::optional<std::string_view> find_cookie(std::span<const http1::Header> headers,
                                            std::string_view name);
// The raw (still percent-encoded) value of parameter `name` in a query string.
std::optional<std::string_view> find_query(std::string_view query, std::string_view name);

// Splits an origin-form or absolute-form target into path and query (without '#...').
void split_target(std::string_view target, std::string_view& path, std::string_view& query);

// The host of a Host field value as routes compare it: lowercase, without port or trailing dot.
// Returns a view of `out`, or empty when the value is longer than kMaxHost.
inline constexpr size_t kMaxHost = 255;
std::string_view normalize_host(std::string_view host_field, char (&out)[kMaxHost]);

}  // namespace usher::route
