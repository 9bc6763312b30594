#pragma once
// A listener's routes compiled for matching: request view -> index of the first route whose
// conditions all hold. Pure: no I/O, no clocks. Routes are indexed by host first, so a request
// costs a few hash lookups however many host routes there are, then walks only the routes that
// can apply to its host, in configuration order.
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

#include "codec/http1/message.h"
#include "config/config.h"
#include "geo/database.h"

namespace usher::route {

struct RequestView {
  std::string_view method;
  std::string_view host;  // normalize_host()'d
  std::string_view path;
  std::string_view query;
  std::span<const http1::Header> headers;
  // The real client (after trusted proxies) and its place, for geo and client_cidr_file
  // conditions; the place is looked up only when a geo condition is evaluated. Null: such
  // conditions never hold.
  geo::Locator* client = nullptr;
};

inline constexpr uint32_t kNoRoute = UINT32_MAX;

class Table {
 public:
  // Owns compiled regular expressions: build one per worker thread, so that RE2's internal
  // caches are never shared between threads.
  explicit Table(const std::vector<config::Route>& routes);
  Table(Table&&) noexcept;
  Table& operator=(Table&&) noexcept;
  ~Table();

  uint32_t match(const RequestView& request) const;

 private:
  struct Compiled;
  std::unique_ptr<Compiled> compiled_;
};

}  // namespace usher::route
