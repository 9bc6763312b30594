#include "admin/sampler.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <nlohmann/json.hpp>

namespace usher::admin {

namespace {

using namespace std::chrono_literals;

uint64_t wall_ms() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

// The q-quantile of a bucketed distribution, interpolated linearly inside its bucket; -1 when
// the distribution is empty.
double quantile_ms(const uint64_t (&buckets)[metrics::kBuckets], double q) {
  uint64_t total = 0;
  for (uint64_t b : buckets) total += b;
  if (total == 0) return -1;
  const double rank = q * static_cast<double>(total);
  uint64_t seen = 0;
  for (size_t i = 0; i < metrics::kBuckets; ++i) {
    if (buckets[i] == 0 || static_cast<double>(seen + buckets[i]) < rank) {
      seen += buckets[i];
      continue;
    }
    const double low = i == 0 ? 0 : metrics::kBucketBounds[i - 1];
    const double high = i < std::size(metrics::kBucketBounds) ? metrics::kBucketBounds[i] : low * 2;
    const double within = (rank - static_cast<double>(seen)) / static_cast<double>(buckets[i]);
    return (low + (high - low) * within) * 1e3;
  }
  return metrics::kBucketBounds[std::size(metrics::kBucketBounds) - 1] * 1e3;
}

}  // namespace

Sampler::Sampler(const metrics::Registry& registry, Control& control)
    : registry_(registry), control_(control) {}

// Called with the mutex held: points every backend at its slot in `generation`, adding the new
// ones and forgetting those it no longer has.
void Sampler::follow(std::shared_ptr<const proxy::Generation> generation) {
  std::vector<Backend> next;
  for (const auto& pool : generation->pools) {
    pool->for_each_member([&](uint32_t i) {
      const size_t id = pool->backend_id(i);
      auto known = std::find_if(backends_.begin(), backends_.end(),
                                [id](const Backend& b) { return b.id == id; });
      Backend b;
      if (known != backends_.end()) {
        b = std::move(*known);
      } else {
        b.pool = pool->config.name;
        b.id = id;
        b.last = registry_.backend_totals(id);
      }
      b.state = pool.get();
      b.index = i;
      b.name = pool->slot(i).name;
      next.push_back(std::move(b));
    });
  }
  backends_ = std::move(next);
  generation_ = std::move(generation);
}

Sampler::~Sampler() {
  stop();
}

void Sampler::start() {
  thread_ = std::thread([this] { run(); });
}

void Sampler::stop() {
  if (!thread_.joinable()) return;
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

void Sampler::record(std::string pool, std::string backend, std::string what) {
  Event event{wall_ms(), std::move(pool), std::move(backend), std::move(what)};
  std::lock_guard lock(mutex_);
  events_.push_back(std::move(event));
  if (events_.size() > kEvents) events_.pop_front();
}

void Sampler::run() {
  std::unique_lock lock(mutex_);
  while (!wake_.wait_for(lock, 1s, [this] { return stopping_; })) sample();
}

// Called with the mutex held, once a second.
void Sampler::sample() {
  const uint64_t now = wall_ms();
  constexpr auto relaxed = std::memory_order_relaxed;
  std::shared_ptr<const proxy::Generation> generation = control_.generation();
  // Backends added or removed through the API change membership without a new generation.
  follow(std::move(generation));
  for (Backend& b : backends_) {
    const metrics::Registry::BackendTotals totals = registry_.backend_totals(b.id);
    uint64_t requests = 0;
    for (size_t c = 0; c < 5; ++c) requests += totals.responses[c] - b.last.responses[c];
    const uint64_t errors =
        totals.responses[4] - b.last.responses[4] + totals.errors - b.last.errors;
    uint64_t delta[metrics::kBuckets];
    for (size_t i = 0; i < metrics::kBuckets; ++i) delta[i] = totals.buckets[i] - b.last.buckets[i];
    b.last = totals;
    const balance::BackendLive& live = b.state->live[b.index];
    const bool up = live.healthy.load(relaxed);
    const uint32_t went_down = live.went_down.load(relaxed);
    const uint32_t went_up = live.went_up.load(relaxed);
    // Counters catch a flap shorter than a second that the flag alone would miss.
    if (went_down != b.went_down || went_up != b.went_up || up != b.was_up) {
      if (went_down != b.went_down || (!up && b.was_up)) {
        events_.push_back({now, b.pool, b.name, "UP -> DOWN"});
      }
      if (went_up != b.went_up || (up && !b.was_up)) {
        events_.push_back({now, b.pool, b.name, "DOWN -> UP"});
      }
      while (events_.size() > kEvents) events_.pop_front();
    }
    b.went_down = went_down;
    b.went_up = went_up;
    b.was_up = up;
    b.points.push_back({now, static_cast<double>(requests), static_cast<double>(errors),
                        quantile_ms(delta, 0.5), quantile_ms(delta, 0.99), up});
    if (b.points.size() > kPoints) b.points.pop_front();
  }
  sample_locality(now);
}

// Called with the mutex held: an event when a locality-aware pool's split over its tiers
// changes (in whole percents), so that the dashboard says when a tier spilled and came back.
void Sampler::sample_locality(uint64_t now) {
  for (const auto& pool : generation_->pools) {
    const auto loads = pool->balancer().tier_loads(pool->live);
    if (!loads) continue;
    std::string split;
    for (size_t t = 0; t < balance::kTiers; ++t) {
      const long percent = std::lround((*loads)[t].share * 100);
      if (percent == 0) continue;
      split += (split.empty() ? "" : ", ") +
               std::string(balance::tier_name(static_cast<balance::Tier>(t))) + " " +
               std::to_string(percent) + "%";
    }
    auto [it, fresh] = tier_split_.try_emplace(pool->config.name, split);
    if (fresh || it->second == split) continue;
    events_.push_back({now, pool->config.name, "", "TIERS " + it->second + " -> " + split});
    while (events_.size() > kEvents) events_.pop_front();
    it->second = split;
  }
}

std::optional<Point> Sampler::latest(size_t backend) const {
  std::lock_guard lock(mutex_);
  for (const Backend& b : backends_) {
    if (b.id == backend && !b.points.empty()) return b.points.back();
  }
  return std::nullopt;
}

std::string Sampler::series_json(uint64_t since_ms) const {
  nlohmann::json backends = nlohmann::json::array();
  nlohmann::json events = nlohmann::json::array();
  std::lock_guard lock(mutex_);
  for (const Backend& b : backends_) {
    if (b.name.empty() || !b.state->present(b.index)) continue;
    nlohmann::json points = nlohmann::json::array();
    for (const Point& p : b.points) {
      if (p.time_ms <= since_ms) continue;
      points.push_back(
          {p.time_ms, p.requests_per_second, p.errors_per_second, p.p50_ms, p.p99_ms, p.up});
    }
    backends.push_back({{"pool", b.pool}, {"backend", b.name}, {"points", points}});
    if (const std::string& zone = b.state->slot(b.index).zone; !zone.empty()) {
      backends.back()["zone"] = zone;
    }
  }
  for (const Event& e : events_) {
    events.push_back(
        {{"time", e.time_ms}, {"pool", e.pool}, {"backend", e.backend}, {"what", e.what}});
  }
  return nlohmann::json{{"interval_ms", 1000}, {"backends", backends}, {"events", events}}.dump();
}

}  // namespace usher::admin
