#include "route/table.h"

#include <re2/re2.h>

#include <algorithm>
#include <array>
#include <optional>
#include <string>
#include <unordered_map>

#include "codec/http1/head_parser.h"
#include "route/fields.h"

namespace usher::route {

namespace {

using config::StringMatch;

class ValueTest {
 public:
  explicit ValueTest(const StringMatch& match)
      : kind_(match.kind),
        text_(match.text),
        regex_(match.kind == StringMatch::Kind::kRegex
                   ? std::make_unique<RE2>(match.text, RE2::Quiet)
                   : nullptr) {}

  bool operator()(std::string_view value) const {
    switch (kind_) {
      case StringMatch::Kind::kPresent:
        return true;
      case StringMatch::Kind::kExact:
        return value == text_;
      case StringMatch::Kind::kPrefix:
        return value.starts_with(text_);
      case StringMatch::Kind::kRegex:
        return RE2::PartialMatch(value, *regex_);
    }
    return false;
  }

 private:
  StringMatch::Kind kind_;
  std::string text_;
  std::unique_ptr<RE2> regex_;
};

struct NamedTest {
  std::string name;
  ValueTest test;
};

// A geo condition: the place's country or continent is one of the listed codes.
class PlaceTest {
 public:
  explicit PlaceTest(const config::GeoMatch& geo) {
    for (const std::string& c : geo.countries) countries_.push_back({c[0], c[1]});
    for (const std::string& c : geo.continents) continents_.push_back({c[0], c[1]});
  }

  bool operator()(const geo::Place& place) const {
    return (place.country[0] && listed(countries_, place.country)) ||
           (place.continent[0] && listed(continents_, place.continent));
  }

 private:
  using Code = std::array<char, 2>;
  static bool listed(const std::vector<Code>& codes, const Code& code) {
    return std::find(codes.begin(), codes.end(), code) != codes.end();
  }
  std::vector<Code> countries_;
  std::vector<Code> continents_;
};

// Every condition but the host, which the index has already decided.
struct Conditions {
  std::optional<ValueTest> path;
  std::vector<std::string> methods;
  std::vector<NamedTest> headers, query, cookies;
  std::shared_ptr<const protect::PrefixSet> client_cidrs;  // shared with the configuration
  std::optional<PlaceTest> place;

  explicit Conditions(const config::RouteMatch& m)
      : methods(m.methods), client_cidrs(m.client_cidrs) {
    if (m.path) path.emplace(*m.path);
    if (m.geo) place.emplace(*m.geo);
    for (const auto& h : m.headers) headers.push_back({h.name, ValueTest(h.value)});
    for (const auto& q : m.query) query.push_back({q.name, ValueTest(q.value)});
    for (const auto& c : m.cookies) cookies.push_back({c.name, ValueTest(c.value)});
  }

  bool hold(const RequestView& r) const {
    if (path && !(*path)(r.path)) return false;
    if (!methods.empty() && std::find(methods.begin(), methods.end(), r.method) == methods.end())
      return false;
    for (const NamedTest& h : headers) {
      bool found = false;
      for (const http1::Header& field : r.headers) {
        if (http1::iequals(field.name, h.name) && h.test(field.value)) {
          found = true;
          break;
        }
      }
      if (!found) return false;
    }
    for (const NamedTest& q : query) {
      auto value = find_query(r.query, q.name);
      if (!value || !q.test(*value)) return false;
    }
    for (const NamedTest& c : cookies) {
      auto value = find_cookie(r.headers, c.name);
      if (!value || !c.test(*value)) return false;
    }
    // Last: the cheap conditions above decide most requests without a prefix search or a
    // database lookup.
    if (client_cidrs && (!r.client || !client_cidrs->contains(r.client->client()))) return false;
    if (place && (!r.client || !(*place)(r.client->place()))) return false;
    return true;
  }
};

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
using HostMap = std::unordered_map<std::string, std::vector<uint32_t>, StringHash, std::equal_to<>>;

// A position in one ascending list of route indices; trivial, so an array of them costs nothing
// to declare.
struct Cursor {
  const uint32_t* next;
  const uint32_t* end;
};

// Longest host is 255 bytes: at most 127 dots, each giving one suffix and one prefix lookup.
constexpr size_t kMaxLists = 2 + 2 * 128;

}  // namespace

struct Table::Compiled {
  std::vector<Conditions> routes;
  HostMap exact;   // "api.example.com"
  HostMap suffix;  // ".example.com" from "*.example.com"
  HostMap prefix;  // "admin." from "admin.*"
  std::vector<uint32_t> any_host;

  // The route lists that apply to `host`, each ascending; returns how many were written.
  size_t lists_for(std::string_view host, Cursor* out) const {
    size_t n = 0;
    auto push = [&](const std::vector<uint32_t>& list) {
      if (!list.empty()) out[n++] = {list.data(), list.data() + list.size()};
    };
    push(any_host);
    auto add = [&](const HostMap& map, std::string_view key) {
      if (auto it = map.find(key); it != map.end()) push(it->second);
    };
    if (host.empty()) return n;
    add(exact, host);
    if (suffix.empty() && prefix.empty()) return n;
    for (size_t i = 0; i < host.size(); ++i) {
      if (host[i] != '.') continue;
      if (!suffix.empty() && i > 0) add(suffix, host.substr(i));
      if (!prefix.empty()) add(prefix, host.substr(0, i + 1));
    }
    return n;
  }
};

Table::Table(const std::vector<config::Route>& routes) : compiled_(std::make_unique<Compiled>()) {
  Compiled& c = *compiled_;
  c.routes.reserve(routes.size());
  for (uint32_t i = 0; i < routes.size(); ++i) {
    const std::string& host = routes[i].match.host;
    c.routes.emplace_back(routes[i].match);
    if (host.empty()) {
      c.any_host.push_back(i);
    } else if (host.starts_with("*.")) {
      c.suffix[host.substr(1)].push_back(i);
    } else if (host.ends_with(".*")) {
      c.prefix[host.substr(0, host.size() - 1)].push_back(i);
    } else {
      c.exact[host].push_back(i);
    }
  }
}

Table::Table(Table&&) noexcept = default;
Table& Table::operator=(Table&&) noexcept = default;
Table::~Table() = default;

// Walks the applicable lists merged in ascending route order: first match wins as written.
uint32_t Table::match(const RequestView& request) const {
  Cursor lists[kMaxLists];
  size_t count = compiled_->lists_for(request.host, lists);
  while (true) {
    size_t best = count;
    for (size_t i = 0; i < count; ++i) {
      if (lists[i].next != lists[i].end && (best == count || *lists[i].next < *lists[best].next)) {
        best = i;
      }
    }
    if (best == count) return kNoRoute;
    uint32_t index = *lists[best].next++;
    if (compiled_->routes[index].hold(request)) return index;
  }
}

}  // namespace usher::route
