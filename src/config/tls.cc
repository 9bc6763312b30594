// The `tls:` block of a listener. Only what is written here is read; the certificates themselves
// are loaded and checked by src/tls when a generation is built (and by `usher check`).
#include <string>

#include "config/reader.h"

namespace usher::config {

namespace {

// Paths in a configuration file are relative to the file's folder, so that a reload from any
// working directory finds the same files.
std::string resolve(const Reader& r, const std::string& path) {
  if (path.empty() || path[0] == '/') return path;
  const size_t slash = r.file().rfind('/');
  return slash == std::string::npos ? path : r.file().substr(0, slash + 1) + path;
}

TlsCertificate read_certificate(Reader& r, const YAML::Node& node) {
  TlsCertificate out;
  out.marks.set("", Reader::position(node));
  if (!r.expect_map(node, "a certificate")) return out;
  r.check_keys(node, {"cert", "key"}, "certificate");
  for (const char* key : {"cert", "key"}) {
    if (!node[key]) {
      r.error(node.Mark(), std::string("a certificate needs '") + key + "' (a PEM file)");
      continue;
    }
    out.marks.set(key, Reader::position(node[key]));
    std::string path;
    if (r.scalar(node[key], key, path)) (key[0] == 'c' ? out.cert : out.key) = resolve(r, path);
  }
  return out;
}

void read_alpn(Reader& r, const YAML::Node& node, std::vector<std::string>& out) {
  if (!r.expect_sequence(node, "alpn")) return;
  out.clear();
  for (const auto& item : node) {
    std::string protocol;
    if (!r.scalar(item, "an alpn protocol", protocol)) continue;
    if (protocol == "h2") {
      r.error(item.Mark(), "alpn: h2 cannot be offered yet (usher speaks HTTP/1.1 to clients)");
    } else if (protocol != "http/1.1") {
      r.error(item.Mark(), "alpn: unknown protocol '" + protocol + "' (available: http/1.1)");
    } else {
      out.push_back(protocol);
    }
  }
  if (node.size() == 0) r.error(node.Mark(), "alpn needs at least one protocol");
}

}  // namespace

ListenerTls read_listener_tls(Reader& r, const YAML::Node& node) {
  ListenerTls tls;
  tls.marks.set("", Reader::position(node));
  if (!r.expect_map(node, "tls")) return tls;
  r.check_keys(node, {"certificates", "min_version", "alpn"}, "tls");
  if (!node["certificates"]) {
    r.error(node.Mark(), "tls needs 'certificates' (a list of { cert: PEM, key: PEM })");
  } else if (r.expect_sequence(node["certificates"], "certificates")) {
    for (const auto& item : node["certificates"])
      tls.certificates.push_back(read_certificate(r, item));
    if (tls.certificates.empty()) r.error(node["certificates"].Mark(), "certificates is empty");
  }
  if (node["min_version"]) {
    std::string version;
    if (r.scalar(node["min_version"], "min_version", version)) {
      if (version == "1.2") {
        tls.min_version = ListenerTls::Version::k12;
      } else if (version == "1.3") {
        tls.min_version = ListenerTls::Version::k13;
      } else {
        r.error(node["min_version"].Mark(),
                "min_version must be \"1.2\" or \"1.3\", not '" + version + "' (never below 1.2)");
      }
    }
  }
  if (node["alpn"]) read_alpn(r, node["alpn"], tls.alpn);
  return tls;
}

}  // namespace usher::config
