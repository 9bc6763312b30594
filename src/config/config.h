#pragma once
// The validated, immutable configuration. All knowledge of the configuration file's YAML lives
// in this folder; quick mode builds a Config directly and goes through the same validate(). The
// rest of the program sees only these plain values. Simulator scenario files are another format,
// read by src/sim/scenario.cc through this folder's Reader (the same positions, the same
// unknown-key rule).
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/address.h"
#include "base/duration.h"
#include "base/expected.h"
#include "base/ip_range.h"
#include "config/route_parts.h"
#include "config/telemetry.h"

namespace usher::config {

using namespace std::chrono_literals;

// Where values came from in a configuration file, by key, so that validate() can say
// FILE:LINE:COL. Empty for a configuration built in code (quick mode).
class Marks {
 public:
  struct Position {
    int line = 0;  // 1-based
    int column = 0;
  };
  void set(std::string key, Position at) { entries_.push_back({std::move(key), at}); }
  bool has(std::string_view key) const {
    for (const Entry& e : entries_) {
      if (e.key == key) return true;
    }
    return false;
  }
  // The key's position, else the object's own ("" key), else none.
  std::optional<Position> find(std::string_view key) const {
    for (const Entry& e : entries_) {
      if (e.key == key) return e.at;
    }
    for (const Entry& e : entries_) {
      if (e.key.empty()) return e.at;
    }
    return std::nullopt;
  }
  // "SOURCE:LINE:COL: " at the key's position (as find), or "SOURCE: " without one.
  std::string where(const std::string& source, std::string_view key) const {
    auto at = find(key);
    if (!at) return source + ": ";
    return source + ":" + std::to_string(at->line) + ":" + std::to_string(at->column) + ": ";
  }

 private:
  struct Entry {
    std::string key;
    Position at;
  };
  std::vector<Entry> entries_;
};

struct Backend {
  Address address;
  uint32_t weight = 1;
  std::string name;    // shown in logs and ${backend}; default: the address
  std::string zone;    // where it runs (locality-aware pools, the zone label of its metrics)
  std::string region;  // empty: unknown, so not this usher's region unless the zone is its zone
  Marks marks;
};

// `locality: { zone, region }`: where this usher runs.
struct Locality {
  std::string zone;
  std::string region;
  Marks marks;
};
// Zone and region names: letters, digits, '.', '_' and '-', 1 to 64 of them. The problem, or
// empty.
std::string locality_name_problem(std::string_view name, std::string_view what);

struct PoolTimeouts {
  Millis connect = 3s;    // TCP connect to a backend
  Millis response = 30s;  // waiting for response bytes, from the whole request sent
};

// Where a hash-based algorithm takes its key from.
struct HashKey {
  enum class Kind : uint8_t { kClientIp, kHeader, kCookie, kUri, kQuery };
  Kind kind = Kind::kClientIp;
  std::string name;  // header, cookie or query parameter name
};

inline constexpr size_t kMaxHealthPayload = 1024;  // a udp check's send and expect

struct HealthCheck {
  // udp: `send` a datagram, a reply containing `expect` passes; dns: ask `query` (type A), an
  // answer with no error passes.
  enum class Type : uint8_t { kHttp, kTcp, kUdp, kDns };
  Type type = Type::kHttp;
  std::string send;    // udp: the payload, bytes as decoded from the file
  std::string expect;  // udp: bytes the reply must contain (empty: any reply)
  std::string query = "health.usher.invalid";  // dns: the name asked for
  std::string path = "/health";
  std::string host;  // Host header of an HTTP check; default: the backend's address
  int expect_status_min = 200;
  int expect_status_max = 200;
  std::string expect_body;  // when set, the response's first 4 KiB must contain it
  Millis interval = 10s;
  Millis timeout = 2s;
  uint32_t rise = 3;  // consecutive successes to return
  uint32_t fall = 3;  // consecutive failures to remove
};

struct Retries {
  uint32_t attempts = 3;                        // tries in all, the first included
  Millis per_try_timeout{0};                    // 0: the pool's response timeout
  Millis backoff = 25ms;                        // base of the exponential backoff (with jitter)
  std::vector<int> statuses = {502, 503, 504};  // retried for idempotent requests
  double budget_percent = 20;                   // retries may add at most this share of requests
  double budget_floor_per_second = 10;          // ... plus this many per second
};

// Passive checks: real traffic ejects a backend that keeps failing.
struct Outlier {
  uint32_t consecutive_failures = 5;  // connect failures, resets and 5xx responses in a row
  Millis base_ejection = 30s;         // first ejection; each repeat adds as much again
  double max_ejection_percent = 50;   // never eject more of the pool than this
};

// Pins a client to one backend by a cookie naming it with an opaque id (never its address).
struct Sticky {
  enum class Mode : uint8_t {
    kInsert,  // usher sets its own cookie
    kPrefix,  // usher prefixes the application's cookie value with the id ("id~value")
  };
  std::string cookie;
  Mode mode = Mode::kInsert;
  Millis max_age{0};   // 0: a session cookie
  std::string secret;  // mixed into the ids so they cannot be derived from addresses
};

// TLS to a pool's backends. Verification is on unless turned off: a proxy that accepts any
// certificate gives the backend hop no protection against an active attacker.
struct PoolTls {
  bool verify = true;
  std::string ca;    // PEM file of trusted certificates; empty: the system's store
  std::string sni;   // sent and verified; empty: no SNI, the certificate must name the backend's IP
  std::string cert;  // client certificate chain and key (both or neither)
  std::string key;
  Marks marks;
};

// Protection against overload: at most `max_connections` requests in flight per backend, the
// rest wait in the pool's queue (FIFO) for at most `queue.timeout`.
struct PoolQueue {
  uint32_t max = 1000;  // waiting requests; beyond: 503 at once (0: no queue)
  Millis timeout = 5s;  // a request waits this long at most, then 503
};

// The PROXY protocol header usher writes first on each connection to a backend (tcp and udp
// listeners' pools), so that the backend learns the client's address.
enum class ProxyProtocolVersion : uint8_t { kOff, kV1, kV2 };

inline constexpr size_t kMaxBufferedRequest = 16 * 1024 * 1024;

// discovery: { dns, type, port, refresh_floor }: a pool's backends are a DNS name's addresses,
// asked again when the answer's TTL runs out.
struct DnsDiscovery {
  enum class Type : uint8_t { kA, kAaaa, kSrv };
  std::string name;
  Type type = Type::kA;
  uint16_t port = 0;   // A and AAAA; SRV records carry their own
  Millis floor{1000};  // never asked more often, whatever the TTL says
  bool operator==(const DnsDiscovery&) const = default;
};

struct Pool {
  Marks marks;
  std::string name;
  std::string balance = "round-robin";
  HashKey hash_key;  // ip-hash: always the client address
  double hash_balance_factor = 1.25;
  std::string hash_key_text;    // as written, for messages
  bool hash_key_given = false;  // these two were set, so the algorithm must use them
  bool hash_balance_factor_given = false;
  Millis slow_start{0};
  std::vector<Backend> backends;
  std::string discovery_file;       // set: `backends` is this file's list, re-read when it changes
  std::optional<DnsDiscovery> dns;  // set: `backends` is the name's last answer (app/dns.cc)
  PoolTimeouts timeouts;
  std::optional<HealthCheck> health;
  Retries retries;
  double panic_percent = 0;  // below this share of healthy backends, use them all (0: never)
  std::optional<Outlier> outlier;
  std::optional<Sticky> sticky;
  std::optional<PoolTls> tls;  // backends speak TLS
  // HTTP/2 to the backends (h2c with prior knowledge, or h2 by ALPN over tls): requests are
  // multiplexed on at most h2_connections connections per backend and worker (gRPC needs it).
  bool h2 = false;
  uint32_t h2_connections = 2;
  uint32_t max_connections = 0;      // requests in flight per backend (0: no limit)
  PoolQueue queue;                   // used with max_connections
  uint32_t max_pending_retries = 0;  // retries in flight in the pool (0: no limit)
  size_t buffer_request = 0;  // read bodies up to this size before choosing a backend (0: never)
  ProxyProtocolVersion proxy_protocol = ProxyProtocolVersion::kOff;
  bool locality_aware = false;       // prefer backends in our zone, then region, then any
  std::optional<Locality> locality;  // the top level's, copied here when locality_aware
};

// GCRA: a key may send `burst` requests at one instant, then one per 1/per_second.
struct RateLimit {
  // local: this process's own table; cluster: one limit for every instance sharing the
  // cluster's Redis (src/cluster/shared_limit.h).
  enum class Scope : uint8_t { kLocal, kCluster };
  HashKey key;
  double per_second = 0;
  uint32_t burst = 1;  // default: the count as written ("300/m": 300)
  Scope scope = Scope::kLocal;
  TextPosition scope_at;  // where `scope: cluster` was written
};

// Who may reach a listener or a route: deny wins; an empty allow list admits everyone.
struct IpLists {
  std::vector<IpRange> allow;
  std::vector<IpRange> deny;
  bool empty() const { return allow.empty() && deny.empty(); }
};

struct Route {
  enum class Action : uint8_t { kPool, kRedirect, kRespond };
  std::string name;  // in metrics and logs; default: its position in the list ("0", "1", ...)
  RouteMatch match;
  Action action = Action::kPool;
  size_t pool = 0;  // index into Config::pools
  Redirect redirect;
  FixedResponse respond;
  std::string strip_prefix;    // removed from the path before forwarding
  std::string prefix_rewrite;  // replaces the matched path_prefix
  PoolTimeouts timeouts;       // the pool's unless the route overrides them
  Retries retries;             // likewise
  HeaderPolicy request_headers;
  HeaderPolicy response_headers;
  IpLists ip;  // others get 403
  std::optional<RateLimit> rate_limit;
  bool idempotent = false;  // requests here may be replayed whatever their method
};

// One certificate chain and its private key, PEM files.
struct TlsCertificate {
  std::string cert;
  std::string key;
  std::string ocsp;  // optional: a DER OCSP response to staple
  Marks marks;
};

// TLS termination on a listener.
struct ListenerTls {
  enum class Version : uint8_t { k12, k13 };
  // Ticket keys come from a secret and the current period: instances that share key_file
  // resume each other's sessions, and keys rotate every `rotate` without a reload.
  struct SessionTickets {
    std::string key_file;  // empty: a random secret for this process
    Millis rotate = 12h;
    // Keys from the cluster's Redis: made by the first instance to need one, used by all.
    bool cluster = false;
  };
  // Mutual TLS: clients present a certificate signed by `ca`.
  struct ClientAuth {
    std::string ca;
    bool required = true;  // false: a certificate is asked for, not demanded
  };
  std::vector<TlsCertificate> certificates;  // the first is the default; SNI picks among all
  Version min_version = Version::k12;
  std::vector<std::string> alpn = {"http/1.1"};  // offered in this order
  SessionTickets session_tickets;
  std::optional<ClientAuth> client_auth;
  Marks marks;
};

// HTTP/2 toward clients: h2c with prior knowledge on a plain listener (the connection preface
// is recognised), h2 by ALPN on a TLS listener whose `alpn` lists it. The limits are the
// defences against the floods of CVE-2023-44487 and CVE-2024-27316 (docs/http2.md).
struct Http2 {
  bool enabled = true;
  uint32_t max_concurrent_streams = 100;
  uint32_t stream_window = 256 * 1024;       // bytes a client may send on a stream unread
  uint32_t connection_window = 1024 * 1024;  // and on the whole connection
  uint32_t max_header_list = 0;    // a request's fields, decoded (0: limits.max_header_bytes)
  uint32_t max_continuations = 8;  // CONTINUATION frames after one HEADERS frame
  uint32_t reset_burst = 1000;     // client stream resets: nghttp2's token bucket
  uint32_t reset_per_second = 33;
  uint32_t glitch_limit = 1000;  // codec/http2/glitches.h; 0: never
  uint32_t glitch_drain_per_second = 100;
  Marks marks;
};

// What a listener speaks; each has its own connection handler.
enum class Protocol : uint8_t { kHttp, kTcp, kUdp };
std::string_view protocol_name(Protocol protocol);

// How a tcp listener moves bytes (src/proxy/l4/relay_pair.h): through the worker's buffers,
// through kernel pipes with splice(2), or copying until a direction streams, then splicing.
enum class Relay : uint8_t { kCopy, kSplice, kAuto };

// Reading a PROXY protocol header (v1 text, v2 binary) that a balancer in front of usher sends
// first on each connection. Only peers in `from` may send one, and they must.
struct ProxyProtocolAccept {
  bool v1 = true;
  bool v2 = true;
  std::vector<IpRange> from;
};

struct Listener {
  Marks marks;
  std::string name;
  Address listen;
  Protocol protocol = Protocol::kHttp;
  std::vector<Route> routes;  // first match wins; none matches: 404
  // Peers whose X-Forwarded-*/Forwarded fields are believed (kept and extended); from anyone
  // else those fields are replaced.
  std::vector<IpRange> trusted_proxies;
  bool forwarded = false;      // also send RFC 7239 Forwarded
  bool request_id = true;      // keep a valid X-Request-Id or generate one; echo it in the response
  bool debug_headers = false;  // X-Usher-Pick on responses: why this backend (docs/routing.md)
  std::optional<ListenerTls> tls;  // HTTPS: clients speak TLS to this listener
  Http2 http2;
  IpLists ip;                               // checked at accept: others are closed unread
  uint32_t max_connections = 0;             // open connections, process-wide (0: no limit)
  uint32_t max_connections_per_client = 0;  // per client address (0: no limit)
  std::optional<RateLimit> rate_limit;      // every request on the listener, before routing
  std::optional<ProxyProtocolAccept> proxy_protocol;  // http and tcp listeners
  Relay relay = Relay::kAuto;                         // tcp
  Millis session_idle = 30s;      // udp: a client's session ends after this long without datagrams
  uint32_t max_sessions = 10000;  // udp: sessions at once; a new client's datagrams beyond: dropped
};

struct ClientTimeouts {
  Millis header = 10s;  // a whole request head must arrive within this (slowloris)
  Millis idle = 60s;    // keep-alive wait for the next request
  Millis body = 60s;    // inactivity while reading from or writing to a client, and while a
                        // backend takes a request body (it paces an upload as a client would)
  Millis tunnel = 1h;   // inactivity on an upgraded (WebSocket) connection
  Millis drain = 30s;   // after SIGTERM, in-flight requests get this long to finish
  Millis tls_handshake = 10s;  // a TLS client must finish its handshake within this
  Millis tcp_idle = 1h;        // tcp listeners: a connection silent both ways this long closes
};

struct Limits {
  size_t max_request_line = 8 * 1024;
  size_t max_header_bytes = 16 * 1024;
  size_t max_headers = 100;
  // A request body must come at least this fast, measured over each `window` (slow-body
  // attacks keep a connection with a trickle that never trips an inactivity timeout).
  struct MinBodyRate {
    size_t bytes_per_second = 0;  // 0: no minimum
    Millis window = 10s;
  } min_body_rate;
};

// geoip: { database }: a country database in MaxMind DB format, opened by src/geo when a
// generation is built (and by `usher check`), for routes' geo conditions and ${geo_country}.
struct GeoIp {
  std::string database;  // resolved against the configuration file's folder
  Marks marks;           // "database"
};

// The workers' event loop: io_uring when the kernel allows it (auto), or as chosen.
enum class IoBackend : uint8_t { kAuto, kIoUring, kEpoll };
Expected<IoBackend> parse_io_backend(std::string_view text);

// Several ushers as one (the top-level `cluster`): state shared through one Redis, and the file
// a VRRP daemon watches to know whether this instance is fit to hold the floating address.
struct Cluster {
  enum class OnRedisFailure : uint8_t { kLocal, kDeny };
  std::optional<Address> redis;  // none: nothing shared, each instance on its own
  std::string key_prefix = "usher:";
  OnRedisFailure on_redis_failure = OnRedisFailure::kLocal;
  std::string health_file;  // empty: none written
  // One instance at a time probes each backend (a lease in Redis) and the others take its
  // verdict (src/health/shared.h).
  bool share_health = false;
};

struct Config {
  std::string source;    // the file it was read from, or what built it ("command line")
  unsigned workers = 0;  // 0: one per core
  IoBackend io_backend = IoBackend::kAuto;
  std::optional<Address> admin;  // the admin API's listen address
  std::string admin_token;       // when set, /api/ and /metrics want "Authorization: Bearer" it
  std::vector<Listener> listeners;
  std::vector<Pool> pools;
  ClientTimeouts timeouts;
  Limits limits;
  AccessLog access_log;
  std::vector<Address> resolvers;    // DNS servers for discovery; empty: /etc/resolv.conf's
  std::string upgrade_socket;        // where a new process takes over the listeners; empty: nowhere
  std::optional<Locality> locality;  // where this usher runs
  std::optional<GeoIp> geoip;
  std::optional<Tracing> tracing;
  Cluster cluster;
};

// Every problem found, each as "FILE:LINE:COL: message".
struct Errors {
  std::vector<std::string> messages;
  // Keeps a message on one line: control characters from the file (a NUL, a line break in a
  // quoted value) are written as \x00, \n, \r or \t.
  void add(std::string_view message);
};

Expected<Config> load_file(const std::string& path, Errors& errors);

// A discovery file's backend list (a pool's `discovery: { file }`), read again when it changes;
// its problems at FILE:LINE:COL of that file.
Expected<std::vector<Backend>> load_backend_list(const std::string& path, Errors& errors);

// The rules a configuration must keep however it was made (file, quick mode, admin API): every
// problem found, with FILE:LINE:COL where the configuration came from a file.
void validate(const Config& config, Errors& errors);
// A backend weight's rule, for files and the admin API alike; the problem, or empty.
inline constexpr unsigned kMinWeight = 1;
inline constexpr unsigned kMaxWeight = 1000;
std::string weight_problem(uint64_t weight);

// The route a listener's `pool:` makes: every request to pool `index`, with its timeouts and
// retries.
Route default_route(const Pool& pool, size_t index);

// Quick mode: one listener in front of one pool, from the command line.
struct QuickSpec {
  std::string listen;
  std::vector<std::string> to;
  std::string balance = "round-robin";
  unsigned workers = 0;
  std::string access_log = "off";
  std::string admin;
  std::string health_path;  // when set: HTTP checks every second, 2 to fall, 2 to rise
  std::string tls_cert;     // both set: the listener speaks HTTPS
  std::string tls_key;
};
Expected<Config> quick_config(const QuickSpec& spec, Errors& errors);
Expected<Config> load_string(const std::string& text, const std::string& name, Errors& errors);

unsigned effective_workers(const Config& config);

}  // namespace usher::config
