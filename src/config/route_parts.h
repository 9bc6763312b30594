#pragma once
// What a route is made of: the conditions a request must meet, and what it does to the messages
// it forwards or answers (header edits, a redirect, a fixed response). Part of the Config
// (config.h), in a file of its own.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace usher::config {

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

// Every condition set must hold; an empty match matches every request.
struct RouteMatch {
  std::string sni;   // tcp listeners only: the TLS ClientHello's server name, as `host` matches
  std::string host;  // "api.example.com" exact, "*.example.com" suffix, "admin.*" prefix
  std::optional<StringMatch> path;  // never kPresent
  std::vector<std::string> methods;
  std::vector<NamedMatch> headers;
  std::vector<NamedMatch> query;
  std::vector<NamedMatch> cookies;
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
  bool empty() const { return remove.empty() && set.empty() && add.empty(); }
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
