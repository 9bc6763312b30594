#include "sim/simulator.h"

#include <algorithm>
#include <cmath>
#include <deque>
#include <fstream>
#include <queue>
#include <random>
#include <sstream>
#include <unordered_map>

#include "balance/balancer.h"
#include "balance/live.h"
#include "balance/locality.h"

namespace usher::sim {

namespace {

struct Request {
  double arrival_s;
  double duration_s;
  uint64_t key;
};

// kHealth: health checks notice a server's crash or return (`request` is 1 for up).
enum class EventKind : uint8_t { kArrival, kCompletion, kServer, kHealth, kSample };

struct Event {
  double at_s;
  uint64_t order;  // ties resolve in creation order: deterministic
  EventKind kind;
  uint32_t server = 0;
  uint32_t request = 0;
  uint32_t generation = 0;  // a completion from before a crash is void
  bool operator>(const Event& o) const { return at_s != o.at_s ? at_s > o.at_s : order > o.order; }
};

struct ServerState {
  bool up = true;
  uint32_t generation = 0;
  uint32_t busy = 0;
  std::deque<uint32_t> queue;
  std::vector<uint32_t> in_service;
  double queue_area = 0;  // integral of queue length over time
  double last_change_s = 0;
  ServerStats stats;
};

class Sampler {
 public:
  Sampler(const Distribution& d, std::mt19937_64& rng) : d_(d), rng_(rng) {}
  double next() {
    switch (d_.kind) {
      case Distribution::Kind::kConstant:
        return d_.a;
      case Distribution::Kind::kExponential:
        return std::exponential_distribution<double>(1 / d_.a)(rng_);
      case Distribution::Kind::kLognormal:
        return std::lognormal_distribution<double>(std::log(d_.a), d_.b)(rng_);
      case Distribution::Kind::kBimodal:
        return std::bernoulli_distribution(d_.p)(rng_) ? d_.b : d_.a;
      case Distribution::Kind::kUniform:
        return std::uniform_real_distribution<double>(d_.a, d_.b)(rng_);
    }
    return d_.a;
  }

 private:
  Distribution d_;
  std::mt19937_64& rng_;
};

Expected<std::vector<Request>> make_requests(const Scenario& s, std::mt19937_64& rng) {
  std::vector<Request> requests;
  if (!s.trace_file.empty()) {
    std::ifstream in(s.trace_file);
    if (!in) return Error{"cannot open trace file " + s.trace_file};
    std::string line;
    for (size_t n = 1; std::getline(in, line); ++n) {
      std::istringstream fields(line);
      Request r{};
      char comma1 = 0, comma2 = 0;
      if (!(fields >> r.arrival_s >> comma1 >> r.duration_s >> comma2 >> r.key) || comma1 != ',' ||
          comma2 != ',') {
        return Error{s.trace_file + ":" + std::to_string(n) +
                     ": expected arrival_s,duration_s,key"};
      }
      requests.push_back(r);
    }
    std::stable_sort(requests.begin(), requests.end(),
                     [](const Request& a, const Request& b) { return a.arrival_s < b.arrival_s; });
    return requests;
  }
  Sampler duration(s.duration, rng);
  std::exponential_distribution<double> gap(s.arrival_rate);
  std::vector<double> zipf_cdf;
  if (s.zipf_s > 0) {
    double total = 0;
    for (uint64_t k = 1; k <= s.keys; ++k)
      zipf_cdf.push_back(total += 1 / std::pow(static_cast<double>(k), s.zipf_s));
    for (double& c : zipf_cdf) c /= total;
  }
  std::uniform_int_distribution<uint64_t> uniform_key(0, s.keys - 1);
  std::uniform_real_distribution<double> unit(0, 1);
  double t = 0;
  requests.reserve(s.requests);
  for (uint64_t i = 0; i < s.requests; ++i) {
    t += gap(rng);
    uint64_t key =
        zipf_cdf.empty()
            ? uniform_key(rng)
            : static_cast<uint64_t>(std::lower_bound(zipf_cdf.begin(), zipf_cdf.end(), unit(rng)) -
                                    zipf_cdf.begin());
    requests.push_back({t, duration.next(), key});
  }
  return requests;
}

double quantile(std::vector<double>& sorted, double q) {
  if (sorted.empty()) return 0;
  size_t i =
      std::min(sorted.size() - 1, static_cast<size_t>(q * static_cast<double>(sorted.size())));
  return sorted[i];
}

class Simulation {
 public:
  Simulation(const Scenario& s, std::string algorithm)
      : s_(s), algorithm_(std::move(algorithm)), rng_(s.seed), servers_(s.servers.size()) {}

  Expected<Result> run() {
    auto requests = make_requests(s_, rng_);
    if (!requests) return requests.error();
    requests_ = std::move(*requests);
    if (requests_.empty()) return Error{"the scenario has no requests"};
    if (auto built = build(); !built.ok()) return built.error();
    for (uint32_t i = 0; i < requests_.size(); ++i)
      push({requests_[i].arrival_s, 0, EventKind::kArrival, 0, i, 0});
    for (const ServerEvent& e : s_.events) {
      if (e.server >= servers_.size())
        return Error{"event names server " + std::to_string(e.server) + " of " +
                     std::to_string(servers_.size())};
      push({e.at_s, 0, EventKind::kServer, e.server, e.up, 0});
    }
    sample_every_s_ = requests_.back().arrival_s / 200;
    push({0, 0, EventKind::kSample, 0, 0, 0});
    latencies_.reserve(requests_.size());
    while (!events_.empty()) {
      Event e = events_.top();
      events_.pop();
      now_s_ = e.at_s;
      handle(e);
    }
    return finish();
  }

 private:
  void push(Event e) {
    e.order = order_++;
    events_.push(e);
  }

  // One balancer over every server for the whole run, as the proxy has one per pool: a crashed
  // server stays in it, and leaves the algorithm's choices only once health checks mark it down.
  Expected<bool> build() {
    balance::BackendSnapshot snapshot;
    for (uint32_t i = 0; i < servers_.size(); ++i) {
      std::string address =
          "10.0." + std::to_string(i / 250) + "." + std::to_string(i % 250 + 1) + ":80";
      const Server& server = s_.servers[i];
      snapshot.backends.push_back(
          {*Address::parse(address), server.weight, server.zone, server.region});
    }
    live_ = std::make_unique<balance::LiveState>(static_cast<uint32_t>(servers_.size()));
    balance::Options options;
    options.slow_start_ms = static_cast<uint64_t>(s_.slow_start_s * 1000);
    if (s_.locality_aware()) {
      const balance::Locality here{s_.local_zone, s_.local_region};
      options.locality = here;
      prepare_phases(snapshot, here);
    }
    auto balancer = balance::Balancer::build(algorithm_, std::move(snapshot), options);
    if (!balancer) return balancer.error();
    balancer_ = std::move(*balancer);
    return true;
  }

  // A phase starts at 0 and at each event's time; each server counts for its zone and tier.
  void prepare_phases(const balance::BackendSnapshot& snapshot, const balance::Locality& here) {
    for (const balance::BackendInfo& b : snapshot.backends) {
      auto known = std::find(zones_.begin(), zones_.end(), b.zone);
      server_zone_.push_back(static_cast<uint32_t>(known - zones_.begin()));
      if (known == zones_.end()) zones_.push_back(b.zone);
      server_tier_.push_back(static_cast<uint8_t>(balance::tier_of(b, here)));
    }
    std::vector<double> starts = {0};
    for (const ServerEvent& e : s_.events) starts.push_back(e.at_s);
    std::sort(starts.begin(), starts.end());
    starts.erase(std::unique(starts.begin(), starts.end()), starts.end());
    for (double at : starts) phases_.push_back({at, std::vector<uint64_t>(zones_.size()), {}});
  }

  void count_phase(uint32_t server) {
    if (phases_.empty()) return;
    auto after = std::upper_bound(phases_.begin(), phases_.end(), now_s_,
                                  [](double t, const Phase& p) { return t < p.from_s; });
    Phase& phase = after == phases_.begin() ? phases_.front() : *(after - 1);
    ++phase.by_zone[server_zone_[server]];
    ++phase.by_tier[server_tier_[server]];
  }

  void handle(const Event& e) {
    switch (e.kind) {
      case EventKind::kArrival:
        return arrive(e.request);
      case EventKind::kCompletion:
        return complete(e);
      case EventKind::kServer:
        return change_server(e.server, e.request != 0);
      case EventKind::kHealth:
        return notice(e.server, e.request != 0);
      case EventKind::kSample:
        return sample();
    }
  }

  uint64_t now_ms() const { return static_cast<uint64_t>(now_s_ * 1000); }

  void arrive(uint32_t id) {
    const Request& r = requests_[id];
    const uint64_t hash =
        balance::hash_key(std::string_view(reinterpret_cast<const char*>(&r.key), sizeof r.key));
    const uint64_t random = balancer_->key_source() == balance::KeySource::kRandom ? rng_() : 0;
    balance::Candidates candidates = balancer_->candidates(hash, random, now_ms());
    for (uint32_t attempt = 0; attempt < std::max(s_.attempts, 1u); ++attempt) {
      const uint32_t server = balancer_->next(candidates, *live_);
      if (server == balance::kNoBackend) break;
      if (servers_[server].up) return admit(server, id);
      ++retries_;  // refused: on to the next candidate at once
    }
    ++dropped_;
  }

  void admit(uint32_t server, uint32_t id) {
    const Request& r = requests_[id];
    count_phase(server);
    if (s_.sticky) {
      auto [it, fresh] = last_server_.try_emplace(r.key, server);
      if (!fresh && it->second != server) {
        ++sticky_breaks_;
        it->second = server;
      }
    }
    ServerState& st = servers_[server];
    if (st.busy < s_.servers[server].concurrency) {
      start(server, id);
    } else if (st.queue.size() < s_.servers[server].max_queue) {
      account_queue(st);
      st.queue.push_back(id);
      st.stats.max_queue =
          std::max<uint32_t>(st.stats.max_queue, static_cast<uint32_t>(st.queue.size()));
    } else {
      return void(++dropped_);
    }
    live_->begin(server);
  }

  void start(uint32_t server, uint32_t id) {
    ServerState& st = servers_[server];
    double service = requests_[id].duration_s / s_.servers[server].speed;
    ++st.busy;
    st.in_service.push_back(id);
    st.stats.busy_s += service;
    push({now_s_ + service, 0, EventKind::kCompletion, server, id, st.generation});
  }

  void complete(const Event& e) {
    ServerState& st = servers_[e.server];
    if (e.generation != st.generation) return;  // lost in a crash
    --st.busy;
    st.in_service.erase(std::find(st.in_service.begin(), st.in_service.end(), e.request));
    ++st.stats.served;
    double latency = now_s_ - requests_[e.request].arrival_s;
    latencies_.push_back(latency);
    live_->end(e.server);
    live_->observe_latency(e.server, latency * 1000, now_ms(), balance::Options{}.latency_decay_ms);
    if (!st.queue.empty()) {
      account_queue(st);
      uint32_t next = st.queue.front();
      st.queue.pop_front();
      start(e.server, next);
    }
  }

  void change_server(uint32_t server, bool up) {
    ServerState& st = servers_[server];
    if (st.up == up) return;
    account_queue(st);
    if (!up) {
      dropped_ += st.in_service.size() + st.queue.size();
      st.in_service.clear();
      st.queue.clear();
      st.busy = 0;
      (*live_)[server].active.store(0);
      ++st.generation;
    }
    st.up = up;
    push({now_s_ + s_.detect_s, 0, EventKind::kHealth, server, up, st.generation});
  }

  // Health checks see what happened detect_s ago; a flap shorter than that goes unnoticed.
  void notice(uint32_t server, bool up) {
    if (servers_[server].up != up) return;
    balance::BackendLive& live = (*live_)[server];
    if (live.healthy.load() == up) return;
    live.healthy.store(up);
    if (up) live.serving_since_ms.store(now_ms());  // slow start
  }

  void sample() {
    std::vector<uint32_t> load;
    for (const ServerState& st : servers_)
      load.push_back(st.busy + static_cast<uint32_t>(st.queue.size()));
    load_over_time_.push_back(std::move(load));
    if (completed_all()) return;
    push({now_s_ + sample_every_s_, 0, EventKind::kSample, 0, 0, 0});
  }

  bool completed_all() const { return latencies_.size() + dropped_ >= requests_.size(); }

  void account_queue(ServerState& st) {
    st.queue_area += static_cast<double>(st.queue.size()) * (now_s_ - st.last_change_s);
    st.last_change_s = now_s_;
  }

  Result finish() {
    Result r;
    r.algorithm = algorithm_;
    std::sort(latencies_.begin(), latencies_.end());
    r.p50_s = quantile(latencies_, 0.5);
    r.p99_s = quantile(latencies_, 0.99);
    r.p999_s = quantile(latencies_, 0.999);
    for (int q = 1; q <= 100; ++q)
      r.latency_cdf_s.push_back(quantile(latencies_, q / 100.0 - 1e-9));
    r.dropped = dropped_;
    r.sticky_breaks = sticky_breaks_;
    r.retries = retries_;
    double max_util = 0, sum_util = 0;
    for (size_t i = 0; i < servers_.size(); ++i) {
      ServerState& st = servers_[i];
      account_queue(st);
      st.stats.mean_queue = now_s_ > 0 ? st.queue_area / now_s_ : 0;
      r.servers.push_back(st.stats);
      double util = st.stats.busy_s / (s_.servers[i].concurrency * s_.servers[i].speed);
      max_util = std::max(max_util, util);
      sum_util += util;
    }
    r.imbalance = sum_util > 0 ? max_util / (sum_util / static_cast<double>(servers_.size())) : 0;
    r.load_over_time = std::move(load_over_time_);
    r.zones = zones_;
    r.phases = std::move(phases_);
    return r;
  }

  const Scenario& s_;
  std::string algorithm_;
  std::mt19937_64 rng_;
  std::vector<Request> requests_;
  std::vector<ServerState> servers_;
  std::unique_ptr<balance::LiveState> live_;
  std::unique_ptr<balance::Balancer> balancer_;
  std::priority_queue<Event, std::vector<Event>, std::greater<Event>> events_;
  uint64_t order_ = 0;
  double now_s_ = 0;
  double sample_every_s_ = 1;
  std::vector<double> latencies_;
  uint64_t dropped_ = 0;
  uint64_t retries_ = 0;
  uint64_t sticky_breaks_ = 0;
  std::unordered_map<uint64_t, uint32_t> last_server_;
  std::vector<std::vector<uint32_t>> load_over_time_;
  std::vector<std::string> zones_;
  std::vector<uint32_t> server_zone_;  // index into zones_
  std::vector<uint8_t> server_tier_;   // balance::Tier
  std::vector<Phase> phases_;
};

}  // namespace

Expected<Result> simulate(const Scenario& scenario, const std::string& algorithm) {
  if (scenario.servers.empty()) return Error{"the scenario has no servers"};
  if (!balance::find_algorithm(algorithm)) return Error{"unknown algorithm '" + algorithm + "'"};
  return Simulation(scenario, algorithm).run();
}

}  // namespace usher::sim
