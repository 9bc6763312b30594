// Header policies of a route: remove, set and add, with ${...} variables split at load. Fields
// usher writes itself cannot be edited.
#include <algorithm>
#include <cctype>

#include "config/reader.h"

namespace usher::config {

namespace {

// Fields usher writes itself; edits would duplicate or contradict them, and framing fields
// would make the forwarded message ambiguous.
constexpr std::string_view kRequestOwned[] = {
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "upgrade",
    "te",
    "proxy-connection",
    "expect",
    "via",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-forwarded-port",
    "forwarded",
    "x-request-id",
};
constexpr std::string_view kResponseOwned[] = {
    "content-length", "transfer-encoding", "connection", "keep-alive", "upgrade", "te", "via",
    "x-request-id",
};

// "text ${client_ip} more" -> parts; ${backend} only where the backend is known (responses).
HeaderTemplate read_template(Reader& r, const YAML::Node& node, bool response,
                             HeaderPolicy& policy) {
  HeaderTemplate out;
  std::string text;
  if (!r.scalar(node, "header value", text)) return out;
  if (text.find_first_of("\r\n") != std::string::npos || text.find('\0') != std::string::npos) {
    r.error(node.Mark(), "a header value cannot contain line breaks or NUL");
    return out;
  }
  using Variable = HeaderTemplate::Variable;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t open = text.find("${", pos);
    if (open == std::string::npos) {
      out.parts.push_back({text.substr(pos), Variable::kNone});
      break;
    }
    if (open > pos) out.parts.push_back({text.substr(pos, open - pos), Variable::kNone});
    size_t close = text.find('}', open);
    std::string name = close == std::string::npos ? "" : text.substr(open + 2, close - open - 2);
    Variable variable = name == "client_ip"             ? Variable::kClientIp
                        : name == "request_id"          ? Variable::kRequestId
                        : name == "backend" && response ? Variable::kBackend
                        : name == "tls_version"         ? Variable::kTlsVersion
                        : name == "tls_cipher"          ? Variable::kTlsCipher
                        : name == "sni"                 ? Variable::kSni
                        : name == "tls_client_subject"  ? Variable::kTlsClientSubject
                        : name == "geo_country"         ? Variable::kGeoCountry
                                                        : Variable::kNone;
    if (variable == Variable::kNone) {
      r.error(node.Mark(), "unknown variable in '" + text + "' (available: ${client_ip}, " +
                               "${request_id}" + (response ? ", ${backend}" : "") +
                               ", ${tls_version}, ${tls_cipher}, ${sni}, ${tls_client_subject}, " +
                               "${geo_country})");
      return out;
    }
    if (variable == Variable::kGeoCountry && !policy.uses_geo_country()) {
      const Marks::Position at = Reader::position(node);
      policy.geo_country_at = {at.line, at.column};
    }
    out.parts.push_back({{}, variable});
    pos = close + 1;
  }
  return out;
}

void check_edit_name(Reader& r, const YAML::Node& node, const std::string& name, bool response) {
  if (!is_http_token(name)) return r.error(node.Mark(), "'" + name + "' is not a header name");
  std::string lower = name;
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  auto owned = [&](auto& list) { return std::find(std::begin(list), std::end(list), lower); };
  bool taken = response ? owned(kResponseOwned) != std::end(kResponseOwned)
                        : owned(kRequestOwned) != std::end(kRequestOwned);
  if (taken) {
    r.error(node.Mark(), name + " is written by usher itself and cannot be edited here" +
                             (response ? std::string()
                                       : std::string(" (see trusted_proxies, forwarded and "
                                                     "request_id on the listener)")));
  }
}

}  // namespace

HeaderPolicy read_header_policy(Reader& r, const YAML::Node& node, bool response) {
  HeaderPolicy policy;
  const char* what = response ? "response_headers" : "request_headers";
  if (!r.expect_map(node, what)) return policy;
  r.check_keys(node, {"add", "set", "remove"}, what);
  if (const YAML::Node remove = node["remove"]; remove && r.expect_sequence(remove, "remove")) {
    for (const auto& item : remove) {
      std::string name;
      if (!r.scalar(item, "header name", name)) continue;
      check_edit_name(r, item, name, response);
      policy.remove.push_back(name);
    }
  }
  for (auto [key, list] : {std::pair{"set", &policy.set}, std::pair{"add", &policy.add}}) {
    const YAML::Node edits = node[key];
    if (!edits || !r.expect_map(edits, key)) continue;
    for (const auto& entry : edits) {
      HeaderEdit edit{entry.first.as<std::string>(), {}};
      check_edit_name(r, entry.first, edit.name, response);
      edit.value = read_template(r, entry.second, response, policy);
      list->push_back(std::move(edit));
    }
  }
  return policy;
}

}  // namespace usher::config
