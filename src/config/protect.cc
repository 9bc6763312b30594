// Reading the protection settings: rate limits, allow/deny lists, a pool's connection limit,
// queue, retry breaker and request buffering, and the minimum request-body rate.
#include <cmath>
#include <cstdlib>
#include <string>

#include "config/reader.h"

namespace usher::config {

namespace {

// "5/s", "300/m", "1000/h", "0.5/s": the count and the period it is per.
bool parse_rate(std::string_view text, double& count, double& period_seconds) {
  const size_t slash = text.find('/');
  if (slash == std::string_view::npos) return false;
  const std::string number(text.substr(0, slash));
  const std::string_view unit = text.substr(slash + 1);
  char* end = nullptr;
  count = std::strtod(number.c_str(), &end);
  if (number.empty() || *end != '\0' || !std::isfinite(count) || count <= 0) return false;
  if (unit == "s") {
    period_seconds = 1;
  } else if (unit == "m") {
    period_seconds = 60;
  } else if (unit == "h") {
    period_seconds = 3600;
  } else {
    return false;
  }
  return true;
}

// A rate limit table keeps a 48-bit timestamp in microseconds: an interval of more than an hour
// a request would be a limit nobody means.
constexpr double kMinPerSecond = 1.0 / 3600;
constexpr double kMaxPerSecond = 1e6;
constexpr unsigned kMaxBurst = 1'000'000;
// A limit's table holds how far ahead of now a key may be: burst / rate, at most 2^46 µs.
constexpr double kMaxBurstSeconds = 70'000'000;
constexpr size_t kMaxBodyRate = size_t{1} << 30;

}  // namespace

RateLimit read_rate_limit(Reader& r, const YAML::Node& node) {
  RateLimit limit;
  if (!r.expect_map(node, "rate_limit")) return limit;
  r.check_keys(node, {"key", "rate", "burst", "scope"}, "rate_limit");
  if (const YAML::Node scope = node["scope"]; scope) {
    std::string text;
    if (r.scalar(scope, "scope", text)) {
      if (text == "cluster") {
        limit.scope = RateLimit::Scope::kCluster;
        const Marks::Position at = Reader::position(scope);
        limit.scope_at = {at.line, at.column};
      } else if (text != "local") {
        r.error(scope.Mark(), "rate_limit scope must be local or cluster, not '" + text + "'");
      }
    }
  }
  if (node["key"]) read_hash_key(r, node["key"], "rate_limit key", limit.key);
  if (!node["rate"]) {
    r.error(node.Mark(), "rate_limit needs a 'rate' (like 5/s, 300/m or 1000/h)");
    return limit;
  }
  double count = 0, period = 0;
  std::string text;
  if (!r.scalar(node["rate"], "rate", text)) return limit;
  if (!parse_rate(text, count, period) || count / period < kMinPerSecond ||
      count / period > kMaxPerSecond) {
    r.error(node["rate"].Mark(), "rate '" + text +
                                     "' must be COUNT/s, COUNT/m or COUNT/h, from 1/h to "
                                     "1000000/s (like 5/s)");
    return limit;
  }
  limit.per_second = count / period;
  unsigned burst = static_cast<unsigned>(std::max(1.0, std::ceil(count)));
  if (node["burst"]) r.unsigned_number(node["burst"], "burst", 1, kMaxBurst, burst);
  limit.burst = std::min(burst, kMaxBurst);
  if (limit.burst / limit.per_second > kMaxBurstSeconds) {
    r.error(node.Mark(),
            "rate_limit: burst / rate is more than 800 days; use a faster rate or a "
            "smaller burst");
  }
  return limit;
}

void read_ip_lists(Reader& r, const YAML::Node& node, IpLists& out) {
  for (auto [key, list] : {std::pair{"allow", &out.allow}, std::pair{"deny", &out.deny}}) {
    const YAML::Node items = node[key];
    if (!items || !r.expect_sequence(items, key)) continue;
    if (items.size() == 0) r.error(items.Mark(), std::string(key) + " is empty");
    for (const auto& item : items) {
      std::string text;
      if (!r.scalar(item, key, text)) continue;
      auto range = IpRange::parse(text);
      if (!range) {
        r.error(item.Mark(), range.error().message);
        continue;
      }
      list->push_back(*range);
    }
  }
}

void read_pool_protection(Reader& r, const YAML::Node& node, Pool& pool) {
  if (node["max_connections"]) {
    r.unsigned_number(node["max_connections"], "max_connections", 1, 1'000'000,
                      pool.max_connections);
  }
  if (const YAML::Node queue = node["queue"]) {
    if (!node["max_connections"]) {
      r.error(queue.Mark(), "queue needs max_connections: requests wait only for a full backend");
    }
    if (r.expect_map(queue, "queue")) {
      r.check_keys(queue, {"max", "timeout"}, "queue");
      if (queue["max"]) r.unsigned_number(queue["max"], "queue max", 0, 1'000'000, pool.queue.max);
      if (queue["timeout"]) r.duration(queue["timeout"], "queue timeout", pool.queue.timeout);
    }
  }
  if (node["max_pending_retries"]) {
    r.unsigned_number(node["max_pending_retries"], "max_pending_retries", 1, 1'000'000,
                      pool.max_pending_retries);
  }
  if (node["buffer_request"]) {
    r.size(node["buffer_request"], "buffer_request", pool.buffer_request);
    if (pool.buffer_request > kMaxBufferedRequest) {
      r.error(node["buffer_request"].Mark(), "buffer_request must be at most 16MiB");
    }
  }
}

void read_min_body_rate(Reader& r, const YAML::Node& node, Limits::MinBodyRate& out) {
  if (!r.expect_map(node, "min_body_rate")) return;
  r.check_keys(node, {"bytes_per_second", "window"}, "min_body_rate");
  if (!node["bytes_per_second"]) {
    return r.error(node.Mark(), "min_body_rate needs 'bytes_per_second' (like 1KiB)");
  }
  r.size(node["bytes_per_second"], "bytes_per_second", out.bytes_per_second);
  if (out.bytes_per_second > kMaxBodyRate) {
    r.error(node["bytes_per_second"].Mark(), "bytes_per_second must be at most 1GiB");
  }
  if (node["window"]) r.duration(node["window"], "min_body_rate window", out.window);
  if (out.window < 1s || out.window > 1h) {
    r.error(node["window"].Mark(), "min_body_rate window must be from 1s to 1h");
  }
}

}  // namespace usher::config
