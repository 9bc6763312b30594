#include <sys/un.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <thread>

#include "config/config.h"
#include "config/reader.h"

namespace usher::config {

namespace {

void read_workers(Reader& r, const YAML::Node& node, Config& config) {
  if (node.IsScalar() && node.Scalar() == "auto") return;
  r.unsigned_number(node, "workers", 0, 1024, config.workers);
}

void read_io_backend(Reader& r, const YAML::Node& node, Config& config) {
  std::string text;
  if (!r.scalar(node, "io_backend", text)) return;
  auto backend = parse_io_backend(text);
  if (backend) {
    config.io_backend = *backend;
  } else {
    r.error(node.Mark(), backend.error().message);
  }
}

void read_client_timeouts(Reader& r, const YAML::Node& node, ClientTimeouts& out) {
  if (!r.expect_map(node, "timeouts")) return;
  r.check_keys(node,
               {"client_header", "client_idle", "client_body", "tunnel", "drain", "tls_handshake",
                "tcp_idle"},
               "timeouts");
  if (node["client_header"]) r.duration(node["client_header"], "client_header", out.header);
  if (node["client_idle"]) r.duration(node["client_idle"], "client_idle", out.idle);
  if (node["client_body"]) r.duration(node["client_body"], "client_body", out.body);
  if (node["tunnel"]) r.duration(node["tunnel"], "tunnel", out.tunnel);
  if (node["drain"]) r.duration(node["drain"], "drain", out.drain);
  if (node["tls_handshake"]) r.duration(node["tls_handshake"], "tls_handshake", out.tls_handshake);
  if (node["tcp_idle"]) r.duration(node["tcp_idle"], "tcp_idle", out.tcp_idle);
}

void read_limits(Reader& r, const YAML::Node& node, Limits& out) {
  if (!r.expect_map(node, "limits")) return;
  r.check_keys(node, {"max_request_line", "max_header_bytes", "max_headers", "min_body_rate"},
               "limits");
  if (node["min_body_rate"]) read_min_body_rate(r, node["min_body_rate"], out.min_body_rate);
  if (node["max_request_line"])
    r.size(node["max_request_line"], "max_request_line", out.max_request_line);
  if (node["max_header_bytes"])
    r.size(node["max_header_bytes"], "max_header_bytes", out.max_header_bytes);
  if (node["max_headers"]) {
    unsigned n = static_cast<unsigned>(out.max_headers);
    r.unsigned_number(node["max_headers"], "max_headers", 0, 1000, n);
    out.max_headers = n;
  }
  if (out.max_header_bytes > 1024 * 1024) {
    r.error(node["max_header_bytes"].Mark(), "max_header_bytes must be at most 1MiB");
  }
}

// off | stdout | a file path
void read_access_log(Reader& r, const YAML::Node& node, AccessLog& out) {
  std::string text;
  if (!r.scalar(node, "access_log", text)) return;
  if (std::string problem = set_access_log_target(text, out); !problem.empty()) {
    r.error(node.Mark(), problem);
  }
}

void read_access_log_format(Reader& r, const YAML::Node& node, AccessLog& out) {
  std::string text;
  if (!r.scalar(node, "access_log_format", text)) return;
  if (text == "json") {
    out.format = AccessLog::Format::kJson;
  } else if (text == "combined") {
    out.format = AccessLog::Format::kCombined;
  } else {
    r.error(node.Mark(), "access_log_format must be json or combined, not '" + text + "'");
  }
}

// Absolute: the running process and its successor read it from the same file, maybe from
// different working directories.
void read_upgrade_socket(Reader& r, const YAML::Node& node, Config& config) {
  std::string path;
  if (!r.scalar(node, "upgrade_socket", path)) return;
  constexpr size_t kMaxUnixPath = sizeof(sockaddr_un{}.sun_path) - 1;
  if (path.empty() || path.front() != '/') {
    r.error(node.Mark(), "upgrade_socket must be an absolute path, not '" + path + "'");
  } else if (path.size() > kMaxUnixPath) {
    r.error(node.Mark(), "upgrade_socket is longer than a unix socket path may be (" +
                             std::to_string(kMaxUnixPath) + " bytes)");
  } else {
    config.upgrade_socket = std::move(path);
  }
}

// Where this usher runs: both names, so that "same zone" and "same region" are both defined.
void read_locality(Reader& r, const YAML::Node& node, Config& config) {
  if (!r.expect_map(node, "locality")) return;
  r.check_keys(node, {"zone", "region"}, "locality");
  Locality here;
  here.marks.set("", Reader::position(node));
  for (auto [key, field] : {std::pair{"zone", &here.zone}, std::pair{"region", &here.region}}) {
    if (!node[key]) {
      r.error(node.Mark(), std::string("locality needs a '") + key + "'");
    } else {
      read_locality_name(r, node[key], key, *field);
    }
  }
  config.locality = std::move(here);
}

Config read_root(Reader& r, const YAML::Node& root) {
  Config config;
  if (!r.expect_document(root, "the configuration")) return config;
  r.check_keys(root,
               {"workers", "io_backend", "admin", "listeners", "pools", "timeouts", "limits",
                "access_log", "access_log_format", "resolvers", "upgrade_socket", "locality",
                "geoip", "tracing", "cluster"},
               "the top level");
  if (root["access_log"]) read_access_log(r, root["access_log"], config.access_log);
  if (root["access_log_format"]) {
    read_access_log_format(r, root["access_log_format"], config.access_log);
  }
  if (const YAML::Node admin = root["admin"]; admin && r.expect_map(admin, "admin")) {
    r.check_keys(admin, {"listen", "token"}, "admin");
    if (admin["token"]) r.scalar(admin["token"], "admin token", config.admin_token);
    if (admin["listen"]) {
      config.admin.emplace();
      r.address(admin["listen"], "admin listen", *config.admin);
    }
  }
  if (root["upgrade_socket"]) read_upgrade_socket(r, root["upgrade_socket"], config);
  if (root["geoip"]) read_geoip(r, root["geoip"], config);
  if (root["tracing"]) read_tracing(r, root["tracing"], config);
  if (root["cluster"]) read_cluster(r, root["cluster"], config);
  if (root["workers"]) read_workers(r, root["workers"], config);
  if (root["locality"]) read_locality(r, root["locality"], config);
  if (root["io_backend"]) read_io_backend(r, root["io_backend"], config);
  if (root["timeouts"]) read_client_timeouts(r, root["timeouts"], config.timeouts);
  if (root["limits"]) read_limits(r, root["limits"], config.limits);
  if (const YAML::Node resolvers = root["resolvers"];
      resolvers && r.expect_sequence(resolvers, "resolvers")) {
    for (const auto& node : resolvers) r.address(node, "resolver", config.resolvers.emplace_back());
  }

  const YAML::Node pools = root["pools"];
  if (!pools) {
    r.error(root.Mark(), "the configuration needs 'pools'");
  } else if (r.expect_sequence(pools, "pools")) {
    for (const auto& p : pools) config.pools.push_back(read_pool(r, p));
  }
  for (Pool& pool : config.pools) {
    if (pool.locality_aware) pool.locality = config.locality;
  }

  if (root["resolvers"] && std::none_of(config.pools.begin(), config.pools.end(),
                                        [](const Pool& p) { return p.dns.has_value(); })) {
    r.error(root["resolvers"].Mark(), "resolvers are for discovery by dns, which no pool uses");
  }

  const YAML::Node listeners = root["listeners"];
  if (!listeners) {
    r.error(root.Mark(), "the configuration needs 'listeners'");
  } else if (r.expect_sequence(listeners, "listeners")) {
    for (const auto& l : listeners) config.listeners.push_back(read_listener(r, l, config.pools));
  }
  check_geo_uses(r, config);
  check_cluster_uses(r, config);
  return config;
}

}  // namespace

std::string set_access_log_target(std::string_view text, AccessLog& out) {
  if (text == "off" || text == "false") {
    out.target = AccessLog::Target::kOff;
  } else if (text == "stdout") {
    out.target = AccessLog::Target::kStdout;
  } else if (text.empty()) {
    return "access_log must be off, stdout or a file path";
  } else {
    out.target = AccessLog::Target::kFile;
    out.path = text;
  }
  return {};
}

Expected<IoBackend> parse_io_backend(std::string_view text) {
  if (text == "auto") return IoBackend::kAuto;
  if (text == "io_uring") return IoBackend::kIoUring;
  if (text == "epoll") return IoBackend::kEpoll;
  return Error{"io_backend must be auto, io_uring or epoll, not '" + std::string(text) + "'"};
}

Expected<Config> load_string(const std::string& text, const std::string& name, Errors& errors) {
  Reader reader(name, errors);
  const std::optional<YAML::Node> root = reader.parse(text);
  if (!root) return Error{errors.messages.front()};
  Config config;
  try {
    config = read_root(reader, *root);
  } catch (const YAML::Exception& e) {
    reader.error(e.mark, e.msg);
  }
  config.source = name;
  validate(config, errors);
  if (!errors.messages.empty()) return Error{errors.messages.front()};
  return config;
}

Expected<Config> load_file(const std::string& path, Errors& errors) {
  const std::optional<std::string> text = read_file(path, errors);
  if (!text) return Error{errors.messages.front()};
  return load_string(*text, path, errors);
}

unsigned effective_workers(const Config& config) {
  if (config.workers) return config.workers;
  unsigned cores = std::thread::hardware_concurrency();
  return cores ? cores : 1;
}

}  // namespace usher::config
