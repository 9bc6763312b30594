// The `tls:` block of a listener. Only what is written here is read; the certificates themselves
// are loaded and checked by src/tls when a generation is built (and by `usher check`).
#include <string>
#include <utility>

#include "config/reader.h"

namespace usher::config {

namespace {

TlsCertificate read_certificate(Reader& r, const YAML::Node& node) {
  TlsCertificate out;
  out.marks.set("", Reader::position(node));
  if (!r.expect_map(node, "a certificate")) return out;
  r.check_keys(node, {"cert", "key", "ocsp"}, "certificate");
  if (node["ocsp"]) {
    out.marks.set("ocsp", Reader::position(node["ocsp"]));
    if (r.scalar(node["ocsp"], "ocsp", out.ocsp)) out.ocsp = r.beside_file(out.ocsp);
  }
  for (const char* key : {"cert", "key"}) {
    if (!node[key]) {
      r.error(node.Mark(), std::string("a certificate needs '") + key + "' (a PEM file)");
      continue;
    }
    out.marks.set(key, Reader::position(node[key]));
    std::string path;
    if (r.scalar(node[key], key, path)) (key[0] == 'c' ? out.cert : out.key) = r.beside_file(path);
  }
  return out;
}

void read_alpn(Reader& r, const YAML::Node& node, std::vector<std::string>& out) {
  if (!r.expect_sequence(node, "alpn")) return;
  out.clear();
  for (const auto& item : node) {
    std::string protocol;
    if (!r.scalar(item, "an alpn protocol", protocol)) continue;
    if (protocol != "h2" && protocol != "http/1.1") {
      r.error(item.Mark(), "alpn: unknown protocol '" + protocol + "' (available: h2, http/1.1)");
    } else {
      out.push_back(protocol);
    }
  }
  if (node.size() == 0) r.error(node.Mark(), "alpn needs at least one protocol");
}

void read_tickets(Reader& r, const YAML::Node& node, ListenerTls& tls) {
  if (!r.expect_map(node, "session_tickets")) return;
  r.check_keys(node, {"key_file", "rotate", "cluster"}, "session_tickets");
  if (node["cluster"]) {
    tls.marks.set("session_tickets.cluster", Reader::position(node["cluster"]));
    read_flag(r, node["cluster"], "cluster", tls.session_tickets.cluster);
    if (tls.session_tickets.cluster && node["key_file"]) {
      r.error(node["cluster"].Mark(),
              "session_tickets: keys come from the cluster or from a key_file, not both");
    }
  }
  if (node["key_file"]) {
    tls.marks.set("session_tickets.key_file", Reader::position(node["key_file"]));
    if (r.scalar(node["key_file"], "key_file", tls.session_tickets.key_file)) {
      tls.session_tickets.key_file = r.beside_file(tls.session_tickets.key_file);
    }
  }
  if (node["rotate"]) {
    r.duration(node["rotate"], "rotate", tls.session_tickets.rotate);
    if (tls.session_tickets.rotate < 1s)
      r.error(node["rotate"].Mark(), "rotate must be at least 1s");
  }
}

void read_client_auth(Reader& r, const YAML::Node& node, ListenerTls& tls) {
  if (!r.expect_map(node, "client_auth")) return;
  r.check_keys(node, {"ca", "required"}, "client_auth");
  ListenerTls::ClientAuth auth;
  if (!node["ca"]) {
    r.error(node.Mark(), "client_auth needs 'ca' (the PEM certificates that sign clients')");
  } else {
    tls.marks.set("client_auth.ca", Reader::position(node["ca"]));
    if (r.scalar(node["ca"], "ca", auth.ca)) auth.ca = r.beside_file(auth.ca);
  }
  if (node["required"]) {
    std::string text;
    if (r.scalar(node["required"], "required", text)) {
      if (text != "true" && text != "false")
        r.error(node["required"].Mark(), "required must be true or false");
      auth.required = text == "true";
    }
  }
  tls.client_auth = auth;
}

}  // namespace

PoolTls read_pool_tls(Reader& r, const YAML::Node& node) {
  PoolTls tls;
  tls.marks.set("", Reader::position(node));
  if (node.IsNull()) return tls;  // `tls:` alone turns TLS on with the defaults
  if (!r.expect_map(node, "tls")) return tls;
  r.check_keys(node, {"verify", "ca", "sni", "cert", "key"}, "tls");
  if (node["verify"]) {
    std::string text;
    if (r.scalar(node["verify"], "verify", text)) {
      if (text != "true" && text != "false")
        r.error(node["verify"].Mark(), "verify must be true or false");
      tls.verify = text != "false";
    }
  }
  if (node["sni"]) r.scalar(node["sni"], "sni", tls.sni);
  for (auto [key, path] : {std::pair<const char*, std::string*>{"ca", &tls.ca},
                           {"cert", &tls.cert},
                           {"key", &tls.key}}) {
    if (!node[key]) continue;
    tls.marks.set(key, Reader::position(node[key]));
    if (r.scalar(node[key], key, *path)) *path = r.beside_file(*path);
  }
  if (node["cert"].IsDefined() != node["key"].IsDefined()) {
    r.error(node.Mark(), "tls: a client certificate needs both 'cert' and 'key' (PEM files)");
  }
  return tls;
}

ListenerTls read_listener_tls(Reader& r, const YAML::Node& node) {
  ListenerTls tls;
  tls.marks.set("", Reader::position(node));
  if (!r.expect_map(node, "tls")) return tls;
  r.check_keys(node, {"certificates", "min_version", "alpn", "session_tickets", "client_auth"},
               "tls");
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
  if (node["session_tickets"]) read_tickets(r, node["session_tickets"], tls);
  if (node["client_auth"]) read_client_auth(r, node["client_auth"], tls);
  return tls;
}

}  // namespace usher::config
