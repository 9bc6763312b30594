// Layer 4 in the configuration file: what tcp and udp listeners take (one pool, or routes by
// the TLS server name), the PROXY protocol both ways, UDP sessions and the payloads of UDP and
// DNS health checks. Keys that mean something only to HTTP are refused on tcp and udp listeners
// here; the pool keys that only HTTP uses are refused by validate(), which sees which listeners
// use a pool.
#include <algorithm>
#include <cctype>

#include "config/reader.h"

namespace usher::config {

namespace {

// HTTP-only listener keys: a tcp or udp listener would ignore them, so they are errors.
constexpr const char* kHttpListenerKeys[] = {
    "trusted_proxies", "forwarded", "request_id", "tls", "rate_limit", "debug_headers", "http2"};
// Keys of a tcp or udp listener that a udp one cannot honour: it has no connections.
constexpr const char* kConnectionKeys[] = {"max_connections", "max_connections_per_client",
                                           "proxy_protocol"};

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// "hex:0a0b..." is bytes in hexadecimal; anything else is text in which \n, \r, \t, \0, \\ and
// \xHH stand for their bytes. The problem, or empty.
std::string decode_payload(std::string_view text, std::string& out) {
  out.clear();
  if (text.starts_with("hex:")) {
    text.remove_prefix(4);
    if (text.size() % 2 != 0) return "hex payload needs an even number of digits";
    for (size_t i = 0; i < text.size(); i += 2) {
      const int high = hex_value(text[i]), low = hex_value(text[i + 1]);
      if (high < 0 || low < 0) return "'" + std::string(text.substr(i, 2)) + "' is not hex";
      out.push_back(static_cast<char>(high * 16 + low));
    }
    return {};
  }
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '\\') {
      out.push_back(text[i]);
      continue;
    }
    if (++i == text.size()) return "a payload cannot end with a lone '\\'";
    switch (text[i]) {
      case 'n':
        out.push_back('\n');
        break;
      case 'r':
        out.push_back('\r');
        break;
      case 't':
        out.push_back('\t');
        break;
      case '0':
        out.push_back('\0');
        break;
      case '\\':
        out.push_back('\\');
        break;
      case 'x': {
        const int high = i + 1 < text.size() ? hex_value(text[i + 1]) : -1;
        const int low = i + 2 < text.size() ? hex_value(text[i + 2]) : -1;
        if (high < 0 || low < 0) return "\\x needs two hex digits";
        out.push_back(static_cast<char>(high * 16 + low));
        i += 2;
        break;
      }
      default:
        return std::string("unknown escape '\\") + text[i] + "' (\\n \\r \\t \\0 \\\\ \\xHH)";
    }
  }
  return {};
}

void read_payload(Reader& r, const YAML::Node& node, const char* what, std::string& out) {
  std::string text;
  if (!r.scalar(node, what, text)) return;
  if (std::string problem = decode_payload(text, out); !problem.empty()) {
    r.error(node.Mark(), std::string(what) + ": " + problem);
  } else if (out.size() > kMaxHealthPayload) {
    r.error(node.Mark(),
            std::string(what) + " must be at most " + std::to_string(kMaxHealthPayload) + " bytes");
  }
}

// `proxy_protocol: { accept: [v1, v2], from: [10.0.0.0/8] }` on a listener.
ProxyProtocolAccept read_accept(Reader& r, const YAML::Node& node) {
  ProxyProtocolAccept accept;
  if (!r.expect_map(node, "proxy_protocol")) return accept;
  r.check_keys(node, {"accept", "from"}, "proxy_protocol");
  if (const YAML::Node versions = node["accept"]) {
    accept.v1 = accept.v2 = false;
    auto one = [&](const YAML::Node& item) {
      std::string v;
      if (!r.scalar(item, "a PROXY protocol version", v)) return;
      if (v == "v1") {
        accept.v1 = true;
      } else if (v == "v2") {
        accept.v2 = true;
      } else {
        r.error(item.Mark(), "unknown PROXY protocol version '" + v + "' (v1 or v2)");
      }
    };
    if (versions.IsSequence()) {
      for (const auto& item : versions) one(item);
      if (versions.size() == 0) r.error(versions.Mark(), "accept needs v1, v2 or both");
    } else {
      one(versions);
    }
  }
  if (!node["from"]) {
    r.error(node.Mark(),
            "proxy_protocol needs 'from': the addresses of the balancers allowed to send it");
  } else if (r.expect_sequence(node["from"], "from")) {
    for (const auto& item : node["from"]) {
      std::string text;
      if (!r.scalar(item, "an address range", text)) continue;
      auto range = IpRange::parse(text);
      if (!range) {
        r.error(item.Mark(), range.error().message);
      } else {
        accept.from.push_back(*range);
      }
    }
  }
  return accept;
}

// "db.example.com" exact, "*.example.com" any subdomain: what a ClientHello's name can be.
void read_sni(Reader& r, const YAML::Node& node, std::string& out) {
  if (!r.scalar(node, "sni", out)) return;
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  std::string_view core = out;
  if (core.starts_with("*.")) core.remove_prefix(2);
  const bool ok = !core.empty() && std::all_of(core.begin(), core.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '_';
  });
  if (!ok) {
    r.error(node.Mark(),
            "sni '" + out + "' must be a name ('db.example.com') or a suffix ('*.example.com')");
  }
}

// A tcp listener's route: `match: { sni: NAME }` (or no match: every connection) and a pool.
Route read_sni_route(Reader& r, const YAML::Node& node, const std::vector<Pool>& pools) {
  Route route;
  if (!r.expect_map(node, "a route")) return route;
  r.check_keys(node, {"name", "match", "pool"}, "tcp route");
  if (node["name"]) r.scalar(node["name"], "route name", route.name);
  if (const YAML::Node match = node["match"]; match && r.expect_map(match, "match")) {
    r.check_keys(match, {"sni"}, "tcp route match");
    if (match["sni"]) read_sni(r, match["sni"], route.match.sni);
  }
  if (!node["pool"]) {
    r.error(node.Mark(), "a tcp route needs a 'pool'");
  } else if (find_pool(r, node["pool"], pools, route.pool)) {
    route.timeouts = pools[route.pool].timeouts;
  }
  return route;
}

void read_sni_routes(Reader& r, const YAML::Node& node, const std::vector<Pool>& pools,
                     Listener& listener) {
  if (!r.expect_sequence(node, "routes")) return;
  if (node.size() == 0) r.error(node.Mark(), "routes is empty: give at least one route");
  for (const auto& item : node) {
    if (!listener.routes.empty() && listener.routes.back().match.sni.empty()) {
      return r.error(item.Mark(),
                     "this route is never used: the route before it matches every connection");
    }
    listener.routes.push_back(read_sni_route(r, item, pools));
    if (listener.routes.back().name.empty())
      listener.routes.back().name = std::to_string(listener.routes.size() - 1);
  }
}

}  // namespace

std::string_view protocol_name(Protocol protocol) {
  switch (protocol) {
    case Protocol::kTcp:
      return "tcp";
    case Protocol::kUdp:
      return "udp";
    case Protocol::kHttp:
      break;
  }
  return "http";
}

void read_protocol(Reader& r, const YAML::Node& node, Protocol& out) {
  std::string text;
  if (!r.scalar(node, "protocol", text)) return;
  if (text == "http") {
    out = Protocol::kHttp;
  } else if (text == "tcp") {
    out = Protocol::kTcp;
  } else if (text == "udp") {
    out = Protocol::kUdp;
  } else {
    r.error(node.Mark(), "unknown protocol '" + text + "' (available: http, tcp, udp)");
  }
}

void read_listener_l4(Reader& r, const YAML::Node& node, const std::vector<Pool>& pools,
                      Listener& listener) {
  const bool http = listener.protocol == Protocol::kHttp;
  const bool udp = listener.protocol == Protocol::kUdp;
  const std::string kind(protocol_name(listener.protocol));
  if (!http) {
    for (const char* key : kHttpListenerKeys) {
      if (node[key]) {
        r.error(node[key].Mark(),
                std::string(key) + " applies to http listeners only (this one is " + kind + ")");
      }
    }
  }
  if (udp) {
    for (const char* key : kConnectionKeys) {
      if (node[key]) {
        r.error(node[key].Mark(), std::string(key) +
                                      " applies to http and tcp listeners (udp has no "
                                      "connections; max_sessions bounds a udp listener)");
      }
    }
    if (node["routes"]) r.error(node["routes"].Mark(), "a udp listener names one 'pool'");
  }
  if (node["relay"] && listener.protocol != Protocol::kTcp) {
    r.error(node["relay"].Mark(), "relay applies to tcp listeners only (this one is " + kind + ")");
  } else if (node["relay"]) {
    std::string text;
    if (r.scalar(node["relay"], "relay", text) && text == "splice") {
      listener.relay = Relay::kSplice;
    } else if (text == "copy") {
      listener.relay = Relay::kCopy;
    } else if (text != "auto") {
      r.error(node["relay"].Mark(), "relay must be auto, copy or splice, not '" + text + "'");
    }
  }
  for (const char* key : {"session_idle", "max_sessions"}) {
    if (node[key] && !udp) {
      r.error(node[key].Mark(),
              std::string(key) + " applies to udp listeners only (this one is " + kind + ")");
    }
  }
  if (node["session_idle"]) r.duration(node["session_idle"], "session_idle", listener.session_idle);
  if (node["max_sessions"]) {
    r.unsigned_number(node["max_sessions"], "max_sessions", 1, 10'000'000, listener.max_sessions);
  }
  if (node["proxy_protocol"] && !udp) {
    listener.proxy_protocol = read_accept(r, node["proxy_protocol"]);
  }
  if (listener.protocol == Protocol::kTcp && node["routes"]) {
    read_sni_routes(r, node["routes"], pools, listener);
  }
}

void read_pool_proxy_protocol(Reader& r, const YAML::Node& node, Pool& pool) {
  std::string text;
  if (!r.scalar(node, "proxy_protocol", text)) return;
  if (text == "v1") {
    pool.proxy_protocol = ProxyProtocolVersion::kV1;
  } else if (text == "v2") {
    pool.proxy_protocol = ProxyProtocolVersion::kV2;
  } else if (text == "off") {
    pool.proxy_protocol = ProxyProtocolVersion::kOff;
  } else {
    r.error(node.Mark(), "proxy_protocol must be v1, v2 or off, not '" + text + "'");
  }
}

void read_health_l4(Reader& r, const YAML::Node& node, HealthCheck& check) {
  const bool udp = check.type == HealthCheck::Type::kUdp;
  const bool dns = check.type == HealthCheck::Type::kDns;
  for (const char* key : {"send", "expect"}) {
    if (node[key] && !udp) r.error(node[key].Mark(), std::string(key) + " applies to type: udp");
  }
  if (node["query"] && !dns) r.error(node["query"].Mark(), "query applies to type: dns");
  if (udp && !node["send"]) {
    r.error(node.Mark(), "a udp health check needs 'send': the datagram that asks for a reply");
  }
  if (node["send"]) read_payload(r, node["send"], "send", check.send);
  if (node["expect"]) read_payload(r, node["expect"], "expect", check.expect);
  if (node["query"]) {
    std::string name;
    read_sni(r, node["query"], name);
    if (name.starts_with("*.") || name.size() > 253) {
      r.error(node["query"].Mark(), "query must be a domain name of at most 253 characters");
    }
    check.query = name;
  }
  if (udp || dns) {
    for (const char* key : {"path", "host", "expect_status", "expect_body"}) {
      if (node[key]) r.error(node[key].Mark(), std::string(key) + " applies to type: http");
    }
  }
}

}  // namespace usher::config
