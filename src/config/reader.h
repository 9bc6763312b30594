#pragma once
// Reads YAML nodes into Config fields, recording every problem as "FILE:LINE:COL: message".
// Used by src/config and by the simulator's scenario files, so both report alike.
#include <yaml-cpp/yaml.h>

#include <cstddef>
#include <initializer_list>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>

#include "config/config.h"

namespace usher::config {

// A configuration is read whole into memory: anything bigger is refused rather than read until
// memory runs out (/dev/zero, a log given by mistake).
inline constexpr size_t kMaxFileBytes = 16 * 1024 * 1024;
// yaml-cpp recurses once per level and gives up at 500 with "bad file" and a position past the
// fault; a configuration needs about ten.
inline constexpr size_t kMaxNesting = 100;

// The text of a regular file of at most kMaxFileBytes; anything else (a directory, a device, a
// FIFO, a larger file) is refused at FILE:1:1 without reading it.
std::optional<std::string> read_file(const std::string& path, Errors& errors);

// Reads YAML nodes into Config fields, recording every problem with its position.
class Reader {
 public:
  Reader(std::string file, Errors& errors) : file_(std::move(file)), errors_(errors) {}

  const std::string& file() const { return file_; }
  // Paths in a configuration file are relative to the file's folder, so that a reload from any
  // working directory finds the same files.
  std::string beside_file(const std::string& path) const {
    if (path.empty() || path[0] == '/') return path;
    const size_t slash = file_.rfind('/');
    return slash == std::string::npos ? path : file_.substr(0, slash + 1) + path;
  }
  Errors& errors() { return errors_; }

  // A null mark (an empty document has no position) is reported at 1:1.
  void error(const YAML::Mark& mark, const std::string& message) {
    std::ostringstream out;
    out << file_ << ':' << (mark.is_null() ? 1 : mark.line + 1) << ':'
        << (mark.is_null() ? 1 : mark.column + 1) << ": " << message;
    errors_.add(out.str());
  }

  // The document's root, or nullopt after reporting why there is none: a syntax error, a
  // control character, nesting deeper than kMaxNesting. Keys given twice in one mapping are
  // reported too, but the document is still read, so that every other problem shows as well.
  std::optional<YAML::Node> parse(const std::string& text);

  // Remembers where a node is, for errors that validate() finds later.
  static Marks::Position position(const YAML::Node& node) {
    return {node.Mark().line + 1, node.Mark().column + 1};
  }

  // The root of a file: an empty one says so, where a mapping is wanted.
  bool expect_document(const YAML::Node& root, const char* what) {
    if (!root.IsNull()) return expect_map(root, what);
    error(root.Mark(), std::string(what) + " is empty");
    return false;
  }

  bool expect_map(const YAML::Node& node, const char* what) {
    if (node.IsMap()) return true;
    error(node.Mark(), std::string(what) + " must be a mapping");
    return false;
  }

  bool expect_sequence(const YAML::Node& node, const char* what) {
    if (node.IsSequence()) return true;
    error(node.Mark(), std::string(what) + " must be a list");
    return false;
  }

  void check_keys(const YAML::Node& map, std::initializer_list<const char*> allowed,
                  const char* where) {
    for (const auto& entry : map) {
      auto key = entry.first.as<std::string>();
      bool known = false;
      for (const char* name : allowed) known = known || key == name;
      if (!known) {
        std::string list;
        for (const char* name : allowed) list += (list.empty() ? "" : ", ") + std::string(name);
        error(entry.first.Mark(),
              "unknown key '" + key + "' in " + where + " (known: " + list + ")");
      }
    }
  }

  bool scalar(const YAML::Node& node, const char* what, std::string& out) {
    if (!node.IsScalar()) {
      error(node.Mark(), std::string(what) + " must be a single value");
      return false;
    }
    out = node.Scalar();
    return true;
  }

  void duration(const YAML::Node& node, const char* what, Millis& out) {
    std::string text;
    if (!scalar(node, what, text)) return;
    auto parsed = parse_duration(text);
    if (!parsed) return error(node.Mark(), std::string(what) + ": " + parsed.error().message);
    if (parsed->count() == 0) return error(node.Mark(), std::string(what) + " must be above 0");
    out = *parsed;
  }

  void size(const YAML::Node& node, const char* what, size_t& out) {
    std::string text;
    if (!scalar(node, what, text)) return;
    auto parsed = parse_size(text);
    if (!parsed) return error(node.Mark(), std::string(what) + ": " + parsed.error().message);
    if (*parsed == 0) return error(node.Mark(), std::string(what) + " must be above 0");
    out = *parsed;
  }

  // The message names the range that is accepted, so that no value passes it only to be
  // refused by a second rule.
  void unsigned_number(const YAML::Node& node, const char* what, unsigned min, unsigned max,
                       unsigned& out) {
    std::string text;
    if (!scalar(node, what, text)) return;
    char* end = nullptr;
    unsigned long long value = std::strtoull(text.c_str(), &end, 10);
    if (text.empty() || *end != '\0' || text[0] == '-' || value < min || value > max) {
      return error(node.Mark(), std::string(what) + " must be a whole number from " +
                                    std::to_string(min) + " to " + std::to_string(max) + ", not '" +
                                    text + "'");
    }
    out = static_cast<unsigned>(value);
  }

  void address(const YAML::Node& node, const char* what, Address& out) {
    std::string text;
    if (!scalar(node, what, text)) return;
    auto parsed = Address::parse(text);
    if (!parsed) return error(node.Mark(), parsed.error().message);
    out = *parsed;
  }

 private:
  std::string file_;
  Errors& errors_;
};

// RFC 9110 token: header, cookie and method names.
inline bool is_http_token(std::string_view text) {
  constexpr std::string_view kSymbols = "!#$%&'*+-.^_`|~";
  for (char c : text) {
    bool alnum = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    if (!alnum && kSymbols.find(c) == std::string_view::npos) return false;
  }
  return !text.empty();
}
inline bool is_cookie_name(std::string_view text) {
  return is_http_token(text);
}

// Shared by the pool and route readers.
// client-ip | uri | header:NAME | cookie:NAME | query:NAME (hash_key, a rate limit's key).
void read_hash_key(Reader& r, const YAML::Node& node, const char* what, HashKey& out);
PoolTimeouts read_pool_timeouts(Reader& r, const YAML::Node& node, PoolTimeouts base);
Retries read_retries(Reader& r, const YAML::Node& node, Retries base);
// The retry budget is the pool's, shared by all its routes: a route that names one is an error,
// not an override that would silently not apply.
void reject_pool_only_retry_keys(Reader& r, const YAML::Node& node, const std::string& pool);

// The pool a `pool:` value names, by its index; false after reporting an unknown name.
bool find_pool(Reader& r, const YAML::Node& node, const std::vector<Pool>& pools, size_t& out);

// Layer 4 (src/config/l4.cc): `protocol`, what tcp and udp listeners take (and refuse),
// a pool's `proxy_protocol`, the payloads of udp and dns health checks.
void read_protocol(Reader& r, const YAML::Node& node, Protocol& out);
void read_listener_l4(Reader& r, const YAML::Node& node, const std::vector<Pool>& pools,
                      Listener& listener);
void read_pool_proxy_protocol(Reader& r, const YAML::Node& node, Pool& pool);

// true/on or false/off (routes.cc).
void read_flag(Reader& r, const YAML::Node& node, const char* what, bool& out);
// A zone or region name (pool.cc), checked by locality_name_problem.
void read_locality_name(Reader& r, const YAML::Node& node, const char* what, std::string& out);

// A backend of a `backends:` list: "HOST:PORT", or { address, weight, name, zone, region }.
Backend read_backend(Reader& r, const YAML::Node& node);
// One entry of `pools` (pool.cc).
Pool read_pool(Reader& r, const YAML::Node& node);

// discovery: { file: PATH } (discovery.cc): the pool's backends are that file's list.
void read_pool_discovery(Reader& r, const YAML::Node& node, Pool& pool);
void read_health_l4(Reader& r, const YAML::Node& node, HealthCheck& check);

// Listeners come after pools: their routes name pools and inherit pool settings.
Listener read_listener(Reader& r, const YAML::Node& node, const std::vector<Pool>& pools);
// A route's `request_headers` or `response_headers`.
HeaderPolicy read_header_policy(Reader& r, const YAML::Node& node, bool response);
// A listener's `tls:` block; files are relative to the configuration file's folder.
ListenerTls read_listener_tls(Reader& r, const YAML::Node& node);
// A listener's `http2:` (http2.cc): false/off, true/on, or a mapping of limits.
void read_http2(Reader& r, const YAML::Node& node, Http2& out);
// A pool's `tls:` block, likewise.
PoolTls read_pool_tls(Reader& r, const YAML::Node& node);
// Where clients are (src/config/geo.cc): the top-level `geoip`, a route match's `geo` and
// `client_cidr_file`, and the check that geo conditions and ${geo_country} have a database.
void read_geoip(Reader& r, const YAML::Node& node, Config& config);
void read_geo_match(Reader& r, const YAML::Node& node, RouteMatch& match);
void read_client_cidr_file(Reader& r, const YAML::Node& node, RouteMatch& match);
void check_geo_uses(Reader& r, const Config& config);
// Protection (src/config/protect.cc): `rate_limit`, `allow`/`deny`, the pool's limits and queue,
// `limits.min_body_rate`.
RateLimit read_rate_limit(Reader& r, const YAML::Node& node);
void read_ip_lists(Reader& r, const YAML::Node& node, IpLists& out);
void read_pool_protection(Reader& r, const YAML::Node& node, Pool& pool);
void read_min_body_rate(Reader& r, const YAML::Node& node, Limits::MinBodyRate& out);
// The top-level `cluster` block (src/config/cluster.cc), and the check that cluster-scoped rate
// limits have its Redis.
void read_cluster(Reader& r, const YAML::Node& node, Config& config);
void check_cluster_uses(Reader& r, const Config& config);
// The top-level `tracing` block (src/config/tracing.cc).
void read_tracing(Reader& r, const YAML::Node& node, Config& config);

}  // namespace usher::config
