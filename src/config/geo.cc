// Where clients are: the top-level `geoip` database, routes' `geo` conditions on it, and
// `client_cidr_file` prefix lists, which need no database. The database itself is opened by
// src/geo when a generation is built (and by `usher check`); a prefix list is read here, with
// the configuration, so a reload reads it again.
#include <algorithm>

#include "config/reader.h"

namespace usher::config {

namespace {

TextPosition text_position(const YAML::Node& node) {
  const Marks::Position at = Reader::position(node);
  return {at.line, at.column};
}

constexpr std::string_view kContinents[] = {"AF", "AN", "AS", "EU", "NA", "OC", "SA"};

// A list of two-letter codes, upper-cased; `valid` says whether one is allowed.
void read_codes(Reader& r, const YAML::Node& node, const char* what,
                bool (*valid)(std::string_view), const char* expected,
                std::vector<std::string>& out) {
  auto one = [&](const YAML::Node& item) {
    std::string code;
    if (!r.scalar(item, what, code)) return;
    std::transform(code.begin(), code.end(), code.begin(),
                   [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
    if (!valid(code)) return r.error(item.Mark(), "'" + item.Scalar() + "' is not " + expected);
    out.push_back(std::move(code));
  };
  if (node.IsSequence()) {
    for (const auto& item : node) one(item);
    if (node.size() == 0) r.error(node.Mark(), std::string(what) + " is empty");
  } else {
    one(node);
  }
}

bool country_code(std::string_view code) {
  return code.size() == 2 &&
         std::all_of(code.begin(), code.end(), [](char c) { return c >= 'A' && c <= 'Z'; });
}

bool continent_code(std::string_view code) {
  return std::find(std::begin(kContinents), std::end(kContinents), code) != std::end(kContinents);
}

// One prefix per line; '#' starts a comment; blank lines are skipped. Problems at FILE:LINE:COL
// of the list.
std::vector<IpRange> read_cidr_lines(const std::string& path, const std::string& text,
                                     Errors& errors) {
  std::vector<IpRange> ranges;
  size_t line_start = 0;
  for (int line = 1; line_start < text.size(); ++line) {
    size_t end = text.find('\n', line_start);
    if (end == std::string::npos) end = text.size();
    std::string_view content(text.data() + line_start, end - line_start);
    content = content.substr(0, content.find('#'));
    const size_t first = content.find_first_not_of(" \t\r");
    if (first != std::string_view::npos) {
      const size_t last = content.find_last_not_of(" \t\r");
      auto range = IpRange::parse(content.substr(first, last - first + 1));
      if (range) {
        ranges.push_back(*range);
      } else {
        errors.add(path + ":" + std::to_string(line) + ":" + std::to_string(first + 1) + ": " +
                   range.error().message);
      }
    }
    line_start = end + 1;
  }
  return ranges;
}

}  // namespace

void read_geoip(Reader& r, const YAML::Node& node, Config& config) {
  if (!r.expect_map(node, "geoip")) return;
  r.check_keys(node, {"database"}, "geoip");
  if (!node["database"]) return r.error(node.Mark(), "geoip needs 'database' (a .mmdb file)");
  GeoIp geoip;
  geoip.marks.set("database", Reader::position(node["database"]));
  if (!r.scalar(node["database"], "geoip database", geoip.database)) return;
  if (geoip.database.empty()) {
    return r.error(node["database"].Mark(), "geoip database must not be empty");
  }
  geoip.database = r.beside_file(geoip.database);
  config.geoip = std::move(geoip);
}

void read_geo_match(Reader& r, const YAML::Node& node, RouteMatch& match) {
  // Set even when it has problems: the route is not mistaken for one that matches everything.
  GeoMatch& geo = match.geo.emplace();
  geo.at = text_position(node);
  if (!r.expect_map(node, "geo")) return;
  r.check_keys(node, {"country", "continent"}, "geo");
  if (node["country"]) {
    read_codes(r, node["country"], "country", country_code,
               "a two-letter country code (ISO 3166-1: DE, FR, US)", geo.countries);
  }
  if (node["continent"]) {
    read_codes(r, node["continent"], "continent", continent_code,
               "a continent code (AF, AN, AS, EU, NA, OC, SA)", geo.continents);
  }
  if (!node["country"] && !node["continent"]) {
    r.error(node.Mark(), "geo needs 'country' or 'continent'");
  }
}

void read_client_cidr_file(Reader& r, const YAML::Node& node, RouteMatch& match) {
  std::string file;
  if (!r.scalar(node, "client_cidr_file", file)) return;
  if (file.empty()) return r.error(node.Mark(), "client_cidr_file must not be empty");
  match.client_cidr_file = r.beside_file(file);
  Errors problems;
  const std::optional<std::string> text = read_file(match.client_cidr_file, problems);
  if (!text) return r.error(node.Mark(), "client_cidr_file: " + problems.messages.front());
  std::vector<IpRange> ranges = read_cidr_lines(match.client_cidr_file, *text, r.errors());
  if (ranges.empty()) {
    r.error(node.Mark(), "client_cidr_file " + match.client_cidr_file +
                             " lists no prefix: the route would match no client");
  }
  match.client_cidrs =
      std::make_shared<const protect::PrefixSet>(protect::PrefixSet::build(ranges));
}

// A geo condition or ${geo_country} with no database to answer them would never match or
// always be empty: refused where they are written.
void check_geo_uses(Reader& r, const Config& config) {
  if (config.geoip) return;
  auto refuse = [&](const TextPosition& at, const std::string& what) {
    r.errors().add(r.file() + ":" + std::to_string(at.line) + ":" + std::to_string(at.column) +
                   ": " + what + " needs a geoip database (top level: geoip: { database: FILE })");
  };
  for (const Listener& listener : config.listeners) {
    for (const Route& route : listener.routes) {
      if (route.match.geo) refuse(route.match.geo->at, "the route's geo condition");
      for (const HeaderPolicy* policy : {&route.request_headers, &route.response_headers}) {
        if (policy->uses_geo_country()) refuse(policy->geo_country_at, "${geo_country}");
      }
    }
  }
}

}  // namespace usher::config
