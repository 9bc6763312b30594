#include <gtest/gtest.h>

#include <string>

#include "config/config.h"

namespace usher::config {
namespace {

struct Loaded {
  bool ok;
  Config config;
  std::vector<std::string> errors;
};

Loaded load(const std::string& yaml) {
  Errors errors;
  auto config = load_string(yaml, "usher.yaml", errors);
  return {config.ok(), config.ok() ? *config : Config{}, errors.messages};
}

const char* kValid = R"(workers: 2
io_backend: epoll
admin: { listen: 127.0.0.1:9900 }
timeouts: { client_header: 5s, client_idle: 2m, drain: 500ms }
limits: { max_header_bytes: 32KiB }
listeners:
  - name: web
    listen: 127.0.0.1:8080
    routes:
      - pool: web
pools:
  - name: web
    balance: round-robin
    backends:
      - { address: 127.0.0.1:9001, weight: 5 }
      - 127.0.0.1:9002
    timeouts: { connect: 250ms, response: 1m }
    health: { type: http, path: /healthz, expect_status: 200-299, interval: 2s, timeout: 500ms, rise: 2, fall: 4 }
)";

TEST(Config, LoadsAValidFile) {
  Loaded l = load(kValid);
  ASSERT_TRUE(l.ok) << (l.errors.empty() ? "" : l.errors[0]);
  EXPECT_EQ(l.config.workers, 2u);
  EXPECT_EQ(l.config.io_backend, IoBackend::kEpoll);
  ASSERT_TRUE(l.config.admin.has_value());
  EXPECT_EQ(l.config.admin->to_string(), "127.0.0.1:9900");
  EXPECT_EQ(l.config.timeouts.header, Millis(5000));
  EXPECT_EQ(l.config.timeouts.idle, Millis(120000));
  EXPECT_EQ(l.config.timeouts.drain, Millis(500));
  EXPECT_EQ(l.config.limits.max_header_bytes, 32u * 1024);
  ASSERT_EQ(l.config.pools.size(), 1u);
  EXPECT_EQ(l.config.pools[0].backends[0].weight, 5u);
  EXPECT_EQ(l.config.pools[0].backends[1].address.to_string(), "127.0.0.1:9002");
  EXPECT_EQ(l.config.pools[0].timeouts.connect, Millis(250));
  ASSERT_EQ(l.config.listeners[0].routes.size(), 1u);
  EXPECT_EQ(l.config.listeners[0].routes[0].pool, 0u);
  ASSERT_TRUE(l.config.pools[0].health.has_value());
  const HealthCheck& h = *l.config.pools[0].health;
  EXPECT_EQ(h.path, "/healthz");
  EXPECT_EQ(h.expect_status_min, 200);
  EXPECT_EQ(h.expect_status_max, 299);
  EXPECT_EQ(h.interval, Millis(2000));
  EXPECT_EQ(h.timeout, Millis(500));
  EXPECT_EQ(h.rise, 2u);
  EXPECT_EQ(h.fall, 4u);
}

// Each broken config names the exact position of its problem.
// The file is refused, and one of its messages begins with `expected`.
void expect_refused(const std::string& yaml, const std::string& expected) {
  Loaded l = load(yaml);
  EXPECT_FALSE(l.ok) << yaml;
  bool found = false;
  for (const std::string& e : l.errors) found = found || e.rfind(expected, 0) == 0;
  EXPECT_TRUE(found) << "expected '" << expected << "' among:\n"
                     << (l.errors.empty() ? std::string("(none)") : l.errors[0]);
}

struct BrokenCase {
  const char* yaml;
  const char* expected;
};

TEST(Config, ReportsEachProblemWithLineAndColumn) {
  const BrokenCase cases[] = {
      {"listeners: []\npools: []\nworkerz: 2\n", "usher.yaml:3:1: unknown key 'workerz'"},
      {"workers: many\nlisteners: []\npools: []\n",
       "usher.yaml:1:10: workers must be a whole number"},
      {"io_backend: kqueue\nlisteners: []\npools: []\n",
       "usher.yaml:1:13: io_backend must be auto, io_uring or epoll, not 'kqueue'"},
      {"listeners:\n  - listen: 127.0.0.1:99999\n    pool: p\npools:\n  - name: p\n    backends: "
       "[127.0.0.1:1]\n",
       "usher.yaml:2:13: invalid address '127.0.0.1:99999'"},
      {"listeners: []\npools:\n  - name: p\n    backends: [127.0.0.1:1]\n  - name: p\n    "
       "backends: [127.0.0.1:2]\n",
       "usher.yaml:5:11: duplicate pool name 'p'"},
      {"listeners:\n  - listen: 127.0.0.1:80\n    pool: nowhere\npools: []\n",
       "usher.yaml:3:11: pool 'nowhere' is not defined"},
      {"timeouts: { client_idle: 10 }\nlisteners: []\npools: []\n",
       "usher.yaml:1:26: client_idle: invalid duration '10'"},
      {"listeners: []\npools:\n  - name: p\n    backends: { a: 1 }\n",
       "usher.yaml:4:15: backends must be a list"},
      {"listeners: []\npools:\n  - name: p\n    balance: fastest\n    backends: [127.0.0.1:1]\n",
       "usher.yaml:4:14: unknown balance algorithm 'fastest'"},
      {"listeners: []\npools:\n  - name: p\n    balance: hash\n    hash_key: body\n    backends: "
       "[127.0.0.1:1]\n",
       "usher.yaml:5:15: unknown hash_key 'body'"},
      {"listeners: []\npools:\n  - name: p\n    hash_balance_factor: 0.5\n    backends: "
       "[127.0.0.1:1]\n",
       "usher.yaml:4:26: hash_balance_factor must be a number above 1 and at most 100"},
      {"listeners: [\n", "usher.yaml:2:1: "},
      {"listeners:\n  - listen: 127.0.0.1:80\n    protocol: sctp\n    pool: p\npools:\n  - name: "
       "p\n    backends: [127.0.0.1:1]\n",
       "usher.yaml:3:15: unknown protocol 'sctp'"},
      {"listeners: []\npools:\n  - name: p\n    backends:\n      - { address: 127.0.0.1:1, weight: "
       "0 }\n",
       "usher.yaml:5:41: weight must be a whole number from 1 to 1000, not '0'"},
  };
  for (const BrokenCase& c : cases) expect_refused(c.yaml, c.expected);
}

TEST(Config, DiscoveryByDnsTakesAQuestionThatCanBeAsked) {
  const std::string pool = "listeners: []\npools:\n  - name: p\n    discovery: ";
  struct Case {
    std::string yaml;
    std::string expected;
  };
  const Case cases[] = {
      {pool + "{ dns: web.test }\n", "usher.yaml:4:16: discovery by a records needs a 'port'"},
      {pool + "{ dns: web.test, type: srv, port: 80 }\n",
       "usher.yaml:4:50: SRV records carry their own ports: no 'port'"},
      {pool + "{ dns: web.test, type: mx, port: 80 }\n",
       "usher.yaml:4:39: discovery type must be a, aaaa or srv, not 'mx'"},
      {pool + "{ dns: web.test, file: b.yaml }\n",
       "usher.yaml:4:23: discovery takes a 'file' or a 'dns' name, not both"},
      {pool + "{ file: b.yaml, port: 80 }\n", "usher.yaml:4:38: port is for discovery by 'dns'"},
      {pool + "{ dns: web.test, port: 0 }\n",
       "usher.yaml:4:39: discovery port must be a whole number from 1 to 65535"},
      {"resolvers: [127.0.0.1:53]\nlisteners: []\npools:\n  - name: p\n    backends: "
       "[127.0.0.1:1]\n",
       "usher.yaml:1:12: resolvers are for discovery by dns, which no pool uses"},
  };
  for (const Case& c : cases) expect_refused(c.yaml, c.expected);
  Loaded ok = load("resolvers: [127.0.0.1:5353]\n" + pool +
                   "{ dns: _x._tcp.web.test, type: srv, refresh_floor: 5s }\n");
  ASSERT_TRUE(ok.ok) << (ok.errors.empty() ? "" : ok.errors[0]);
  ASSERT_TRUE(ok.config.pools[0].dns.has_value());
  EXPECT_EQ(ok.config.pools[0].dns->type, DnsDiscovery::Type::kSrv);
  EXPECT_EQ(ok.config.pools[0].dns->floor, std::chrono::seconds(5));
  EXPECT_EQ(ok.config.resolvers.at(0).to_string(), "127.0.0.1:5353");
}

TEST(Config, ReportsAllProblemsAtOnce) {
  Loaded l = load(
      "workerz: 1\nlisteners:\n  - listen: nope\n    pool: p\npools:\n  - name: p\n    backends: "
      "[]\n");
  EXPECT_FALSE(l.ok);
  EXPECT_EQ(l.errors.size(), 3u);
}

TEST(Config, RoutesInheritAndOverrideTheirPool) {
  Loaded l = load(R"(listeners:
  - listen: 127.0.0.1:8080
    trusted_proxies: [10.0.0.0/8, "::1"]
    forwarded: true
    request_id: false
    routes:
      - match: { host: "Admin.*", path_prefix: /api/, method: [GET, POST],
                 headers: [{ name: X-A, regex: "^v[0-9]" }], query: [{ name: q }],
                 cookies: [{ name: c, prefix: "x" }] }
        pool: api
        prefix_rewrite: /v2/
        timeouts: { response: 2s }
        retries: { attempts: 1 }
        response_headers: { set: { X-Served-By: "b=${backend}" }, remove: [Server] }
      - match: { path: /old }
        redirect: { status: 308, scheme: https }
    pool: web
pools:
  - name: web
    backends: [127.0.0.1:9001]
  - name: api
    timeouts: { connect: 100ms, response: 9s }
    retries: { attempts: 4, budget: 5 }
    sticky: { cookie: SRV, mode: prefix, max_age: 1h, secret: s3 }
    backends: [{ address: 127.0.0.1:9002, name: api-1 }]
)");
  ASSERT_TRUE(l.ok) << (l.errors.empty() ? "" : l.errors[0]);
  const Listener& listener = l.config.listeners[0];
  EXPECT_EQ(listener.trusted_proxies.size(), 2u);
  EXPECT_TRUE(listener.forwarded);
  EXPECT_FALSE(listener.request_id);
  ASSERT_EQ(listener.routes.size(), 3u);  // the listener's pool is the last route
  const Route& api = listener.routes[0];
  EXPECT_EQ(api.match.host, "admin.*");
  EXPECT_EQ(api.match.path->kind, StringMatch::Kind::kPrefix);
  EXPECT_EQ(api.match.methods, (std::vector<std::string>{"GET", "POST"}));
  EXPECT_EQ(api.match.headers[0].value.kind, StringMatch::Kind::kRegex);
  EXPECT_EQ(api.match.query[0].value.kind, StringMatch::Kind::kPresent);
  EXPECT_EQ(api.match.cookies[0].value.text, "x");
  EXPECT_EQ(api.pool, 1u);
  EXPECT_EQ(api.prefix_rewrite, "/v2/");
  EXPECT_EQ(api.timeouts.connect, Millis(100));    // from the pool
  EXPECT_EQ(api.timeouts.response, Millis(2000));  // the route's own
  EXPECT_EQ(api.retries.attempts, 1u);
  EXPECT_EQ(api.retries.budget_percent, 5);
  ASSERT_EQ(api.response_headers.set.size(), 1u);
  EXPECT_EQ(api.response_headers.set[0].value.parts.size(), 2u);
  EXPECT_EQ(listener.routes[1].action, Route::Action::kRedirect);
  EXPECT_EQ(listener.routes[1].redirect.status, 308);
  EXPECT_EQ(listener.routes[2].pool, 0u);
  const Pool& pool = l.config.pools[1];
  ASSERT_TRUE(pool.sticky.has_value());
  EXPECT_EQ(pool.sticky->mode, Sticky::Mode::kPrefix);
  EXPECT_EQ(pool.sticky->max_age, Millis(3600000));
  EXPECT_EQ(pool.backends[0].name, "api-1");
  EXPECT_EQ(l.config.pools[0].backends[0].name, "127.0.0.1:9001");
}

TEST(Config, MissingFileIsAnError) {
  Errors errors;
  EXPECT_FALSE(load_file("/nonexistent/usher.yaml", errors).ok());
  ASSERT_EQ(errors.messages.size(), 1u);
  EXPECT_EQ(errors.messages[0],
            "/nonexistent/usher.yaml:1:1: cannot open file: No such file or directory");
}

}  // namespace
}  // namespace usher::config
