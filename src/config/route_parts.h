#pragma once
// What a route is made of: the conditions a request must meet, and what it does to the messages
// it forwards or answers (header edits, a redirect, a fixed response). Part of the Config
// (config.h), in a file of its own.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <memory>

#include "protect/ip_filter.h"

namespace usher::config {

// Where something was written in the configuration file (1-based); 0 when built in code.
struct TextPosition {
  int line = 0;
  int column = 0;
};

// A condition on a string: present at all, equal, starting with, or fully matching an RE2
// regular expression (linear time in the input).
struct StringMatch {
  enum class Kind : uint8_t { kPresent, kExact, kPrefix, kRegex };
  Kind kind = Kind::kPresent;
  std::string text;
};

// A condition on a header, query parameter or cookie.
struct NamedMatch {
  std::string name;
  StringMatch value;
};

// The client's place by the top-level geoip database: in any of the countries or any of the
// continents listed. An address the database does not place is in none.
struct GeoMatch {
  std::vector<std::string> countries;   // ISO 3166-1 alpha-2, upper case: "DE"
  std::vector<std::string> continents;  // AF, AN, AS, EU, NA, OC, SA
  TextPosition at;                      // of the `geo` key
};

// Every condition set must hold; an empty match matches every request.
struct RouteMatch {
  std::string sni;   // tcp listeners only: the TLS ClientHello's server name, as `host` matches
  std::string host;  // "api.example.com" exact, "*.example.com" suffix, "admin.*" prefix
  std::optional<StringMatch> path;  // never kPresent
  std::vector<std::string> methods;
  std::vector<NamedMatch> headers;
  std::vector<NamedMatch> query;
  std::vector<NamedMatch> cookies;
  std::optional<GeoMatch> geo;
  // client_cidr_file: the client (after trusted proxies) is in one of the file's prefixes, read
  // and compiled when the configuration is loaded; copies of the configuration share the set.
  std::string client_cidr_file;
  std::shared_ptr<const protect::PrefixSet> client_cidrs;
};

// A header value with variables, split at load: literal text and ${...} references in order.
struct HeaderTemplate {
  enum class Variable : uint8_t {
    kNone,
    kClientIp,
    kRequestId,
    kBackend,
    kTlsVersion,        // empty on plain HTTP
    kTlsCipher,         // likewise
    kSni,               // the server name the client asked for, if any
    kTlsClientSubject,  // the client certificate's subject (client_auth), RFC 2253
    kGeoCountry,        // the client's country code by the geoip database; empty if unknown
  };
  struct Part {
    std::string literal;
    Variable variable = Variable::kNone;
  };
  std::vector<Part> parts;
};

struct HeaderEdit {
  std::string name;
  HeaderTemplate value;
};

// Applied to the fields of a forwarded message: remove and set drop fields of that name, then
// set and add append theirs.
struct HeaderPolicy {
  std::vector<std::string> remove;
  std::vector<HeaderEdit> set;
  std::vector<HeaderEdit> add;
  TextPosition geo_country_at;  // the first edit that uses ${geo_country}; line 0: none does
  bool empty() const { return remove.empty() && set.empty() && add.empty(); }
  bool uses_geo_country() const { return geo_country_at.line != 0; }
};

struct Redirect {
  int status = 302;
  std::string scheme;  // empty: the request's; a new scheme drops the port of the Host
  std::string host;    // empty: the request's Host
  std::string path;    // empty: the request's path; the query is kept either way
};

struct FixedResponse {
  int status = 200;
  std::string body;
  std::string content_type = "text/plain; charset=utf-8";
};

}  // namespace usher::config
