#include "route/table.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "route/fields.h"

namespace usher::route {
namespace {

using config::Route;
using config::StringMatch;

Route on_host(std::string host) {
  Route r;
  r.match.host = std::move(host);
  return r;
}

Route on_path(StringMatch::Kind kind, std::string text) {
  Route r;
  r.match.path = StringMatch{kind, std::move(text)};
  return r;
}

struct Request {
  std::string method = "GET";
  std::string host = "example.com";
  std::string target = "/";
  std::vector<http1::Header> headers;

  uint32_t against(const Table& table) const {
    char buffer[kMaxHost];
    RequestView view{method, normalize_host(host, buffer), {}, {}, headers};
    split_target(target, view.path, view.query);
    return table.match(view);
  }
};

TEST(RouteTable, FirstMatchWinsInConfigurationOrderAcrossHostKinds) {
  std::vector<Route> routes = {on_path(StringMatch::Kind::kPrefix, "/api/"),  // 0
                               on_host("*.example.com"),                      // 1
                               on_host("admin.*"),                            // 2
                               on_host("admin.example.com"),                  // 3
                               Route{}};                                      // 4
  Table table(routes);
  Request r;
  r.host = "admin.example.com";
  EXPECT_EQ(r.against(table), 1u);  // the suffix route comes first
  r.target = "/api/x";
  EXPECT_EQ(r.against(table), 0u);
  r.target = "/";
  r.host = "admin.example.org:8443";
  EXPECT_EQ(r.against(table), 2u);
  r.host = "example.com";  // "*.example.com" needs a label in front
  EXPECT_EQ(r.against(table), 4u);
  r.host = "";
  EXPECT_EQ(r.against(table), 4u);
}

TEST(RouteTable, NoMatchWithoutADefault) {
  std::vector<Route> routes = {on_host("a.example")};
  Table table(routes);
  Request r;
  r.host = "b.example";
  EXPECT_EQ(r.against(table), kNoRoute);
  r.host = "A.Example.";
  EXPECT_EQ(r.against(table), 0u);
}

TEST(RouteTable, PathKinds) {
  std::vector<Route> routes = {on_path(StringMatch::Kind::kExact, "/exact"),
                               on_path(StringMatch::Kind::kRegex, "^/v[0-9]+/items$"),
                               on_path(StringMatch::Kind::kPrefix, "/static/")};
  Table table(routes);
  Request r;
  for (auto [target, expected] : {std::pair{"/exact", 0u},
                                  {"/exact?q=1", 0u},
                                  {"/exact/", kNoRoute},
                                  {"/v12/items", 1u},
                                  {"/v12/items/", kNoRoute},
                                  {"/static/a.css", 2u},
                                  {"http://h/static/x", 2u}}) {
    r.target = target;
    EXPECT_EQ(r.against(table), expected) << target;
  }
}

TEST(RouteTable, MethodHeaderQueryAndCookieConditionsAreAnded) {
  Route r;
  r.match.methods = {"POST", "PUT"};
  r.match.headers = {{"X-Canary", {StringMatch::Kind::kExact, "1"}}};
  r.match.query = {{"debug", {StringMatch::Kind::kPresent, ""}}};
  r.match.cookies = {{"beta", {StringMatch::Kind::kRegex, "^y"}}};
  std::vector<Route> routes = {r};
  Table table(routes);
  Request q;
  q.method = "POST";
  q.target = "/x?a=1&debug";
  q.headers = {{"x-canary", "1", http1::HeaderId::kOther},
               {"Cookie", "a=b; beta=yes", http1::HeaderId::kCookie}};
  EXPECT_EQ(q.against(table), 0u);
  Request wrong_method = q;
  wrong_method.method = "GET";
  EXPECT_EQ(wrong_method.against(table), kNoRoute);
  Request no_query = q;
  no_query.target = "/x?debugging=1";
  EXPECT_EQ(no_query.against(table), kNoRoute);
  Request other_cookie = q;
  other_cookie.headers[1].value = "beta=no";
  EXPECT_EQ(other_cookie.against(table), kNoRoute);
  Request other_header = q;
  other_header.headers[0].value = "2";
  EXPECT_EQ(other_header.against(table), kNoRoute);
}

// A backtracking engine takes exponential time here; RE2 is linear in the input.
TEST(RouteTable, PathologicalRegexInputCompletes) {
  std::vector<Route> routes = {on_path(StringMatch::Kind::kRegex, "(a+)+$")};
  Table table(routes);
  Request r;
  r.target = "/" + std::string(50 * 1024, 'a') + "!";
  EXPECT_EQ(r.against(table), kNoRoute);
  r.target.pop_back();
  EXPECT_EQ(r.against(table), 0u);
}

TEST(RouteFields, SplitTargetAndFindValues) {
  std::string_view path, query;
  split_target("/a/b?x=1&y#frag", path, query);
  EXPECT_EQ(path, "/a/b");
  EXPECT_EQ(query, "x=1&y");
  EXPECT_EQ(find_query(query, "y"), std::string_view());
  EXPECT_FALSE(find_query(query, "z").has_value());
  split_target("http://host:80/p?q", path, query);
  EXPECT_EQ(path, "/p");
  EXPECT_EQ(query, "q");
  EXPECT_EQ(find_cookie(std::string_view(" a=1;b=2 ; c"), "b"), "2");
  char buffer[kMaxHost];
  EXPECT_EQ(normalize_host("[::1]:8080", buffer), "[::1]");
  EXPECT_EQ(normalize_host("WWW.Example.COM.:80", buffer), "www.example.com");
}

}  // namespace
}  // namespace usher::route
