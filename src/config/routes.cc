// Listeners and their routes: match conditions, actions, path rewrites and per-route overrides
// (header policies are header_edits.cc's). Regular expressions are compiled here once so that a bad
// one is reported with its position; the router compiles its own copies per worker.
#include <re2/re2.h>

#include <algorithm>
#include <cctype>

#include "config/reader.h"

namespace usher::config {

namespace {

std::string lowercase(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return text;
}

bool valid_regex(Reader& r, const YAML::Node& node, const std::string& pattern) {
  RE2 compiled(pattern, RE2::Quiet);
  if (compiled.ok()) return true;
  r.error(node.Mark(), "invalid regular expression '" + pattern + "': " + compiled.error());
  return false;
}

// "api.example.com" exact, "*.example.com" any subdomain, "admin.*" any domain below "admin".
void read_host(Reader& r, const YAML::Node& node, std::string& out) {
  if (!r.scalar(node, "host", out)) return;
  out = lowercase(out);
  std::string_view core = out;
  if (core.starts_with("*.")) core.remove_prefix(2);
  if (core.ends_with(".*") && core.size() != out.size()) core = {};  // both ends: not allowed
  if (core.ends_with(".*")) core.remove_suffix(2);
  bool ok = !core.empty() && core.find('*') == std::string_view::npos &&
            core.find(':') == std::string_view::npos;
  if (!ok) {
    r.error(node.Mark(), "host '" + out +
                             "' must be a name ('api.example.com'), a suffix ('*.example.com') or "
                             "a prefix ('admin.*'), without a port");
  }
}

void read_path(Reader& r, const YAML::Node& node, const char* key, StringMatch::Kind kind,
               std::optional<StringMatch>& out) {
  if (out) return r.error(node.Mark(), "give only one of path, path_prefix and path_regex");
  StringMatch match{kind, {}};
  if (!r.scalar(node, key, match.text)) return;
  if (kind == StringMatch::Kind::kRegex) {
    if (!valid_regex(r, node, match.text)) return;
  } else if (!match.text.starts_with('/')) {
    return r.error(node.Mark(), std::string(key) + " must start with '/'");
  }
  out = std::move(match);
}

void read_methods(Reader& r, const YAML::Node& node, std::vector<std::string>& out) {
  auto one = [&](const YAML::Node& item) {
    std::string method;
    if (!r.scalar(item, "method", method)) return;
    if (!is_http_token(method)) return r.error(item.Mark(), "'" + method + "' is not a method");
    out.push_back(method);
  };
  if (node.IsSequence()) {
    for (const auto& item : node) one(item);
  } else {
    one(node);
  }
}

// [{ name: X, value | prefix | regex: ... }]; a name alone asks only for presence.
void read_named(Reader& r, const YAML::Node& node, const char* what, bool token_names,
                std::vector<NamedMatch>& out) {
  if (!r.expect_sequence(node, what)) return;
  for (const auto& item : node) {
    if (!r.expect_map(item, what)) continue;
    r.check_keys(item, {"name", "value", "prefix", "regex"}, what);
    NamedMatch match;
    if (!item["name"]) {
      r.error(item.Mark(), std::string(what) + " condition needs a 'name'");
      continue;
    }
    if (!r.scalar(item["name"], "name", match.name)) continue;
    if (token_names && !is_http_token(match.name)) {
      r.error(item["name"].Mark(), "'" + match.name + "' is not a valid name");
    }
    int given = 0;
    for (auto [key, kind] : {std::pair{"value", StringMatch::Kind::kExact},
                             std::pair{"prefix", StringMatch::Kind::kPrefix},
                             std::pair{"regex", StringMatch::Kind::kRegex}}) {
      if (!item[key]) continue;
      ++given;
      match.value.kind = kind;
      r.scalar(item[key], key, match.value.text);
      if (kind == StringMatch::Kind::kRegex) valid_regex(r, item[key], match.value.text);
    }
    if (given > 1) r.error(item.Mark(), "give only one of value, prefix and regex");
    out.push_back(std::move(match));
  }
}

RouteMatch read_match(Reader& r, const YAML::Node& node) {
  RouteMatch match;
  if (!r.expect_map(node, "match")) return match;
  r.check_keys(node,
               {"host", "path", "path_prefix", "path_regex", "method", "headers", "query",
                "cookies", "geo", "client_cidr_file"},
               "match");
  if (node["host"]) read_host(r, node["host"], match.host);
  if (node["path"]) read_path(r, node["path"], "path", StringMatch::Kind::kExact, match.path);
  if (node["path_prefix"]) {
    read_path(r, node["path_prefix"], "path_prefix", StringMatch::Kind::kPrefix, match.path);
  }
  if (node["path_regex"]) {
    read_path(r, node["path_regex"], "path_regex", StringMatch::Kind::kRegex, match.path);
  }
  if (node["method"]) read_methods(r, node["method"], match.methods);
  if (node["headers"]) read_named(r, node["headers"], "headers", true, match.headers);
  if (node["query"]) read_named(r, node["query"], "query", false, match.query);
  if (node["cookies"]) read_named(r, node["cookies"], "cookies", true, match.cookies);
  if (node["geo"]) read_geo_match(r, node["geo"], match);
  if (node["client_cidr_file"]) read_client_cidr_file(r, node["client_cidr_file"], match);
  return match;
}

bool matches_everything(const RouteMatch& m) {
  return m.sni.empty() && m.host.empty() && !m.path && m.methods.empty() && m.headers.empty() &&
         m.query.empty() && m.cookies.empty() && !m.geo && m.client_cidr_file.empty();
}

Redirect read_redirect(Reader& r, const YAML::Node& node) {
  Redirect redirect;
  if (!r.expect_map(node, "redirect")) return redirect;
  r.check_keys(node, {"status", "scheme", "host", "path"}, "redirect");
  std::string status;
  if (node["status"] && r.scalar(node["status"], "redirect status", status)) {
    constexpr std::string_view kAllowed[] = {"301", "302", "303", "307", "308"};
    if (std::find(std::begin(kAllowed), std::end(kAllowed), status) == std::end(kAllowed)) {
      r.error(node["status"].Mark(),
              "redirect status must be 301, 302, 303, 307 or 308, not '" + status + "'");
    } else {
      redirect.status = std::stoi(status);
    }
  }
  if (node["scheme"] && r.scalar(node["scheme"], "scheme", redirect.scheme) &&
      redirect.scheme != "http" && redirect.scheme != "https") {
    r.error(node["scheme"].Mark(), "redirect scheme must be http or https");
  }
  if (node["host"]) r.scalar(node["host"], "host", redirect.host);
  if (node["path"] && r.scalar(node["path"], "path", redirect.path) &&
      !redirect.path.starts_with('/')) {
    r.error(node["path"].Mark(), "redirect path must start with '/'");
  }
  for (const std::string* part : {&redirect.host, &redirect.path}) {
    if (part->find_first_of(" \r\n\t") != std::string::npos)
      r.error(node.Mark(), "redirect host and path cannot contain spaces or line breaks");
  }
  return redirect;
}

FixedResponse read_respond(Reader& r, const YAML::Node& node) {
  FixedResponse respond;
  if (!r.expect_map(node, "respond")) return respond;
  r.check_keys(node, {"status", "body", "content_type"}, "respond");
  if (node["status"]) {
    unsigned status = static_cast<unsigned>(respond.status);
    r.unsigned_number(node["status"], "respond status", 200, 599, status);
    respond.status = static_cast<int>(status);
  }
  if (node["body"]) r.scalar(node["body"], "body", respond.body);
  if (node["content_type"] &&
      r.scalar(node["content_type"], "content_type", respond.content_type) &&
      respond.content_type.find_first_of("\r\n") != std::string::npos) {
    r.error(node["content_type"].Mark(), "content_type cannot contain line breaks");
  }
  return respond;
}

void read_rewrite(Reader& r, const YAML::Node& node, Route& route) {
  if (node["strip_prefix"] && node["prefix_rewrite"]) {
    return r.error(node["prefix_rewrite"].Mark(),
                   "give only one of strip_prefix and prefix_rewrite");
  }
  if (node["strip_prefix"] && r.scalar(node["strip_prefix"], "strip_prefix", route.strip_prefix) &&
      !route.strip_prefix.starts_with('/')) {
    r.error(node["strip_prefix"].Mark(), "strip_prefix must start with '/'");
  }
  if (node["prefix_rewrite"] &&
      r.scalar(node["prefix_rewrite"], "prefix_rewrite", route.prefix_rewrite)) {
    if (!route.prefix_rewrite.starts_with('/'))
      r.error(node["prefix_rewrite"].Mark(), "prefix_rewrite must start with '/'");
    if (!route.match.path || route.match.path->kind != StringMatch::Kind::kPrefix)
      r.error(node["prefix_rewrite"].Mark(), "prefix_rewrite needs a path_prefix match");
  }
}

Route read_route(Reader& r, const YAML::Node& node, const std::vector<Pool>& pools) {
  Route route;
  if (!r.expect_map(node, "a route")) return route;
  r.check_keys(node,
               {"name", "match", "pool", "redirect", "respond", "strip_prefix", "prefix_rewrite",
                "timeouts", "retries", "request_headers", "response_headers", "allow", "deny",
                "rate_limit", "idempotent"},
               "route");
  if (node["name"]) r.scalar(node["name"], "route name", route.name);
  if (node["match"]) route.match = read_match(r, node["match"]);
  read_ip_lists(r, node, route.ip);
  if (node["rate_limit"]) route.rate_limit = read_rate_limit(r, node["rate_limit"]);
  int actions = (node["pool"] ? 1 : 0) + (node["redirect"] ? 1 : 0) + (node["respond"] ? 1 : 0);
  if (actions != 1) {
    r.error(node.Mark(), "a route needs exactly one of 'pool', 'redirect' and 'respond'");
    return route;
  }
  if (node["redirect"]) {
    route.action = Route::Action::kRedirect;
    route.redirect = read_redirect(r, node["redirect"]);
  } else if (node["respond"]) {
    route.action = Route::Action::kRespond;
    route.respond = read_respond(r, node["respond"]);
  }
  for (const char* key : {"strip_prefix", "prefix_rewrite", "timeouts", "retries",
                          "request_headers", "response_headers", "idempotent"}) {
    if (node[key] && route.action != Route::Action::kPool)
      r.error(node[key].Mark(), std::string(key) + " applies only to routes with a 'pool'");
  }
  if (route.action != Route::Action::kPool || !find_pool(r, node["pool"], pools, route.pool)) {
    return route;
  }
  const Pool& pool = pools[route.pool];
  read_rewrite(r, node, route);
  route.timeouts =
      node["timeouts"] ? read_pool_timeouts(r, node["timeouts"], pool.timeouts) : pool.timeouts;
  if (node["retries"]) {
    reject_pool_only_retry_keys(r, node["retries"], pool.name);
    route.retries = read_retries(r, node["retries"], pool.retries);
  } else {
    route.retries = pool.retries;
  }
  if (node["request_headers"])
    route.request_headers = read_header_policy(r, node["request_headers"], false);
  if (node["response_headers"])
    route.response_headers = read_header_policy(r, node["response_headers"], true);
  if (node["idempotent"]) read_flag(r, node["idempotent"], "idempotent", route.idempotent);
  return route;
}

void read_routes(Reader& r, const YAML::Node& node, const std::vector<Pool>& pools,
                 Listener& listener) {
  if (!r.expect_sequence(node, "routes")) return;
  if (node.size() == 0) r.error(node.Mark(), "routes is empty: give at least one route");
  bool catch_all_seen = false;
  for (const auto& item : node) {
    if (catch_all_seen) {
      return r.error(item.Mark(),
                     "this route is never used: the route before it matches every request");
    }
    listener.routes.push_back(read_route(r, item, pools));
    if (listener.routes.back().name.empty())
      listener.routes.back().name = std::to_string(listener.routes.size() - 1);
    catch_all_seen = matches_everything(listener.routes.back().match);
  }
}

void read_trusted(Reader& r, const YAML::Node& node, std::vector<IpRange>& out) {
  if (!r.expect_sequence(node, "trusted_proxies")) return;
  for (const auto& item : node) {
    std::string text;
    if (!r.scalar(item, "trusted proxy", text)) continue;
    auto range = IpRange::parse(text);
    if (!range) {
      r.error(item.Mark(), range.error().message);
      continue;
    }
    out.push_back(*range);
  }
}

}  // namespace

void read_flag(Reader& r, const YAML::Node& node, const char* what, bool& out) {
  std::string text;
  if (!r.scalar(node, what, text)) return;
  if (text == "true" || text == "on") {
    out = true;
  } else if (text == "false" || text == "off") {
    out = false;
  } else {
    r.error(node.Mark(), std::string(what) + " must be true or false, not '" + text + "'");
  }
}

bool find_pool(Reader& r, const YAML::Node& node, const std::vector<Pool>& pools, size_t& out) {
  std::string name;
  if (!r.scalar(node, "pool", name)) return false;
  for (size_t i = 0; i < pools.size(); ++i) {
    if (pools[i].name == name) {
      out = i;
      return true;
    }
  }
  r.error(node.Mark(), "pool '" + name + "' is not defined");
  return false;
}

Route default_route(const Pool& pool, size_t index) {
  Route route;
  route.name = "default";
  route.pool = index;
  route.timeouts = pool.timeouts;
  route.retries = pool.retries;
  return route;
}

Listener read_listener(Reader& r, const YAML::Node& node, const std::vector<Pool>& pools) {
  Listener listener;
  listener.marks.set("", Reader::position(node));
  if (!r.expect_map(node, "a listener")) return listener;
  for (const char* key : {"name", "listen"}) {
    if (node[key]) listener.marks.set(key, Reader::position(node[key]));
  }
  r.check_keys(node,
               {"name",
                "listen",
                "protocol",
                "pool",
                "routes",
                "trusted_proxies",
                "forwarded",
                "request_id",
                "tls",
                "allow",
                "deny",
                "max_connections",
                "max_connections_per_client",
                "rate_limit",
                "proxy_protocol",
                "session_idle",
                "max_sessions",
                "relay",
                "debug_headers",
                "http2"},
               "listener");
  if (node["name"]) r.scalar(node["name"], "listener name", listener.name);
  if (!node["listen"]) {
    r.error(node.Mark(), "listener needs a 'listen' address");
  } else {
    r.address(node["listen"], "listen", listener.listen);
  }
  if (node["protocol"]) read_protocol(r, node["protocol"], listener.protocol);
  read_listener_l4(r, node, pools, listener);
  if (node["routes"] && listener.protocol == Protocol::kHttp) {
    read_routes(r, node["routes"], pools, listener);
  }
  if (node["pool"]) {
    // The listener's pool is the default after any routes.
    size_t pool = 0;
    if (find_pool(r, node["pool"], pools, pool)) {
      Route fallback = default_route(pools[pool], pool);
      if (!listener.routes.empty() && matches_everything(listener.routes.back().match)) {
        r.error(node["pool"].Mark(),
                "this pool is never used: the last route matches every request");
      }
      listener.routes.push_back(std::move(fallback));
    }
  }
  if (!node["pool"] && !node["routes"]) {
    r.error(node.Mark(), "listener needs a 'pool' or 'routes'");
  }
  if (node["trusted_proxies"]) read_trusted(r, node["trusted_proxies"], listener.trusted_proxies);
  if (node["forwarded"]) read_flag(r, node["forwarded"], "forwarded", listener.forwarded);
  if (node["request_id"]) read_flag(r, node["request_id"], "request_id", listener.request_id);
  if (node["debug_headers"]) {
    read_flag(r, node["debug_headers"], "debug_headers", listener.debug_headers);
  }
  if (node["tls"]) listener.tls = read_listener_tls(r, node["tls"]);
  if (node["http2"]) read_http2(r, node["http2"], listener.http2);
  read_ip_lists(r, node, listener.ip);
  if (node["max_connections"]) {
    r.unsigned_number(node["max_connections"], "max_connections", 1, 10'000'000,
                      listener.max_connections);
  }
  if (node["max_connections_per_client"]) {
    r.unsigned_number(node["max_connections_per_client"], "max_connections_per_client", 1, 65535,
                      listener.max_connections_per_client);
  }
  if (node["rate_limit"]) listener.rate_limit = read_rate_limit(r, node["rate_limit"]);
  return listener;
}

}  // namespace usher::config
