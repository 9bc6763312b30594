// A pool's backends from a file of their own, `discovery: { file: PATH }`: the same list
// `backends:` takes, which an autoscaler or a deploy tool rewrites and renames into place. The
// file is read with the configuration (start, `usher check`, reload) and again whenever it
// changes (src/discovery).
#include <filesystem>

#include "config/reader.h"

namespace usher::config {

namespace {

std::vector<Backend> read_list(Reader& r, const YAML::Node& root) {
  std::vector<Backend> backends;
  if (root.IsNull() || (root.IsSequence() && root.size() == 0)) {
    r.error(root.Mark(), "the backend list is empty: a pool keeps at least one backend");
  } else if (r.expect_sequence(root, "the backend list")) {
    for (const auto& node : root) backends.push_back(read_backend(r, node));
  }
  return backends;
}

}  // namespace

Expected<std::vector<Backend>> load_backend_list(const std::string& path, Errors& errors) {
  const size_t before = errors.messages.size();
  const std::optional<std::string> text = read_file(path, errors);
  if (!text) return Error{errors.messages.back()};
  Reader reader(path, errors);
  const std::optional<YAML::Node> root = reader.parse(*text);
  if (!root) return Error{errors.messages.back()};
  std::vector<Backend> backends;
  try {
    backends = read_list(reader, *root);
  } catch (const YAML::Exception& e) {
    reader.error(e.mark, e.msg);
  }
  if (errors.messages.size() > before) return Error{errors.messages[before]};
  return backends;
}

namespace {

void read_dns(Reader& r, const YAML::Node& node, Pool& pool) {
  DnsDiscovery dns;
  if (!r.scalar(node["dns"], "discovery dns name", dns.name)) return;
  if (dns.name.empty()) return r.error(node["dns"].Mark(), "discovery dns name must not be empty");
  std::string type = "a";
  if (node["type"] && !r.scalar(node["type"], "discovery type", type)) return;
  if (type == "aaaa") {
    dns.type = DnsDiscovery::Type::kAaaa;
  } else if (type == "srv") {
    dns.type = DnsDiscovery::Type::kSrv;
  } else if (type != "a") {
    return r.error(node["type"].Mark(),
                   "discovery type must be a, aaaa or srv, not '" + type + "'");
  }
  if (dns.type == DnsDiscovery::Type::kSrv) {
    if (node["port"])
      return r.error(node["port"].Mark(), "SRV records carry their own ports: no 'port'");
  } else if (!node["port"]) {
    return r.error(node.Mark(), "discovery by " + type + " records needs a 'port'");
  } else {
    unsigned port = 0;
    r.unsigned_number(node["port"], "discovery port", 1, 65535, port);
    dns.port = static_cast<uint16_t>(port);
  }
  if (node["refresh_floor"]) r.duration(node["refresh_floor"], "refresh_floor", dns.floor);
  pool.dns = std::move(dns);
}

}  // namespace

void read_pool_discovery(Reader& r, const YAML::Node& node, Pool& pool) {
  if (!r.expect_map(node, "discovery")) return;
  r.check_keys(node, {"file", "dns", "type", "port", "refresh_floor"}, "discovery");
  if (pool.marks.has("backends")) {
    return r.error(node.Mark(),
                   "a pool takes its backends from 'backends' or from 'discovery', not both");
  }
  if (node["file"] && node["dns"]) {
    return r.error(node["dns"].Mark(), "discovery takes a 'file' or a 'dns' name, not both");
  }
  if (node["dns"]) return read_dns(r, node, pool);
  for (const char* key : {"type", "port", "refresh_floor"}) {
    if (node[key])
      return r.error(node[key].Mark(), std::string(key) + " is for discovery by 'dns'");
  }
  if (!node["file"]) return r.error(node.Mark(), "discovery needs a 'file' or a 'dns' name");
  std::string file;
  if (!r.scalar(node["file"], "discovery file", file)) return;
  if (file.empty()) return r.error(node["file"].Mark(), "discovery file must not be empty");
  // Relative to the configuration file, as a deploy tool writes both side by side.
  const std::filesystem::path path(file);
  pool.discovery_file =
      path.is_absolute() ? file : (std::filesystem::path(r.file()).parent_path() / path).string();
  if (auto backends = load_backend_list(pool.discovery_file, r.errors())) {
    pool.backends = std::move(*backends);
  }
}

}  // namespace usher::config
