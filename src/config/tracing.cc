// The top-level `tracing` block: where spans go (an OTLP/HTTP collector), which requests are
// sampled, and from how long a request counts as slow (exported whatever was sampled).
#include <cmath>
#include <cstdlib>

#include "config/reader.h"

namespace usher::config {

namespace {

// A ratio written as a plain decimal or with an exponent; nan and inf are refused.
bool read_ratio(Reader& r, const YAML::Node& node, double& out) {
  std::string text;
  if (!r.scalar(node, "sample", text)) return false;
  char* end = nullptr;
  const double value = text.empty() ? NAN : std::strtod(text.c_str(), &end);
  if (std::isnan(value) || *end != '\0' || value < 0 || value > 1) {
    r.error(node.Mark(),
            "sample must be a ratio from 0 to 1 (0.1 samples one trace in ten), "
            "not '" +
                text + "'");
    return false;
  }
  out = value;
  return true;
}

}  // namespace

std::string set_otlp_url(std::string_view url, Tracing& out) {
  constexpr std::string_view kScheme = "http://";
  if (url.starts_with("https://")) {
    return "otlp: https is not supported; give the collector's plain http:// URL (a local agent "
           "or collector sidecar)";
  }
  if (!url.starts_with(kScheme)) {
    return "otlp must be an http:// URL such as http://127.0.0.1:4318/v1/traces, not '" +
           std::string(url) + "'";
  }
  std::string_view rest = url.substr(kScheme.size());
  const size_t slash = rest.find('/');
  const std::string_view authority = rest.substr(0, slash);
  const std::string_view path =
      slash == std::string_view::npos ? std::string_view("/v1/traces") : rest.substr(slash);
  for (char c : path) {
    if (c <= ' ' || c == 0x7f || c == '#' || c == '?') {
      return "otlp: the URL's path may not hold spaces, control characters, a query or a "
             "fragment";
    }
  }
  if (authority.empty() || authority.front() == ':' || authority.front() == '*' ||
      authority.find('@') != std::string_view::npos) {
    return "otlp: the URL needs a collector address (http://HOST:PORT/PATH), not '" +
           std::string(url) + "'";
  }
  // A port is written after the host, which may be a bracketed IPv6 address: without one, 80.
  const size_t bracket = authority.rfind(']');
  const std::string_view after_host =
      bracket == std::string_view::npos ? authority : authority.substr(bracket + 1);
  const bool has_port = after_host.find(':') != std::string_view::npos;
  const std::string with_port = std::string(authority) + (has_port ? "" : ":80");
  auto address = Address::parse(with_port);
  if (!address) {
    return "otlp: " + address.error().message;
  }
  if (address->port() == 0) return "otlp: the collector's port must not be 0";
  out.otlp = url;
  out.collector = *address;
  out.authority = authority;
  out.path = path;
  return {};
}

void read_tracing(Reader& r, const YAML::Node& node, Config& config) {
  if (!r.expect_map(node, "tracing")) return;
  r.check_keys(node, {"otlp", "sample", "slow"}, "tracing");
  Tracing tracing;
  bool ok = true;
  if (!node["otlp"]) {
    r.error(node.Mark(), "tracing needs 'otlp', the collector's URL (http://HOST:PORT/v1/traces)");
    ok = false;
  } else if (std::string url; r.scalar(node["otlp"], "otlp", url)) {
    if (std::string problem = set_otlp_url(url, tracing); !problem.empty()) {
      r.error(node["otlp"].Mark(), problem);
      ok = false;
    }
  } else {
    ok = false;
  }
  if (node["sample"]) ok = read_ratio(r, node["sample"], tracing.sample) && ok;
  if (node["slow"]) r.duration(node["slow"], "slow", tracing.slow);
  if (ok) config.tracing = std::move(tracing);
}

}  // namespace usher::config
