#include "sim/simulator.h"

#include <algorithm>
#include <deque>
#include <limits>
#include <queue>
#include <random>
#include <unordered_map>

#include "balance/balancer.h"
#include "balance/live.h"
#include "balance/locality.h"
#include "sim/quantiles.h"
#include "sim/requests.h"

namespace usher::sim {

namespace {

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

}  // namespace

// Requests come one at a time in arrival order (offer); only those in flight are held, in slots
// reused once they end, so a replay of any length runs in bounded memory.
class Simulation {
 public:
  Simulation(const Scenario& s, std::string algorithm, double span_s)
      : s_(s), algorithm_(std::move(algorithm)), rng_(s.seed), servers_(s.servers.size()) {
    set_span(span_s);
  }

  std::mt19937_64& rng() { return rng_; }
  // About 200 load samples over the run: `span_s` is the last arrival, or an estimate.
  void set_span(double span_s) { sample_every_s_ = span_s > 0 ? span_s / 200 : 1; }

  Expected<bool> start() {
    if (auto built = build(); !built.ok()) return built.error();
    for (const ServerEvent& e : s_.events) {
      if (e.server >= servers_.size())
        return Error{"event names server " + std::to_string(e.server) + " of " +
                     std::to_string(servers_.size())};
      push({e.at_s, 0, EventKind::kServer, e.server, e.up, 0});
    }
    push({0, 0, EventKind::kSample, 0, 0, 0});
    return true;
  }

  // Everything due before the arrival happens first; at the same instant the arrival goes
  // first, as when every arrival was queued before the run began.
  void offer(const Request& r) {
    run_until(r.arrival_s);
    now_s_ = std::max(now_s_, r.arrival_s);
    ++offered_;
    arrive(hold(r));
  }

  Result finish() {
    closed_ = true;
    run_until(std::numeric_limits<double>::infinity());
    return result();
  }

 private:
  void run_until(double limit_s) {
    while (!events_.empty() && events_.top().at_s < limit_s) {
      Event e = events_.top();
      events_.pop();
      now_s_ = e.at_s;
      handle(e);
    }
  }

  uint32_t hold(const Request& r) {
    if (free_slots_.empty()) {
      requests_.push_back(r);
      return static_cast<uint32_t>(requests_.size() - 1);
    }
    const uint32_t id = free_slots_.back();
    free_slots_.pop_back();
    requests_[id] = r;
    return id;
  }
  void release(uint32_t id) { free_slots_.push_back(id); }
  void drop(uint32_t id) {
    ++dropped_;
    release(id);
  }

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
    drop(id);
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
      return drop(id);
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
    latencies_.add(latency);
    release(e.request);
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
      for (uint32_t id : st.in_service) release(id);
      for (uint32_t id : st.queue) release(id);
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

  bool completed_all() const { return closed_ && latencies_.count() + dropped_ >= offered_; }

  void account_queue(ServerState& st) {
    st.queue_area += static_cast<double>(st.queue.size()) * (now_s_ - st.last_change_s);
    st.last_change_s = now_s_;
  }

  Result result() {
    Result r;
    r.algorithm = algorithm_;
    r.p50_s = latencies_.at(0.5);
    r.p99_s = latencies_.at(0.99);
    r.p999_s = latencies_.at(0.999);
    for (int q = 1; q <= 100; ++q) r.latency_cdf_s.push_back(latencies_.at(q / 100.0 - 1e-9));
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
  std::vector<Request> requests_;  // slots of the requests in flight
  std::vector<uint32_t> free_slots_;
  uint64_t offered_ = 0;
  bool closed_ = false;  // no request will be offered any more
  std::vector<ServerState> servers_;
  std::unique_ptr<balance::LiveState> live_;
  std::unique_ptr<balance::Balancer> balancer_;
  std::priority_queue<Event, std::vector<Event>, std::greater<Event>> events_;
  uint64_t order_ = 0;
  double now_s_ = 0;
  double sample_every_s_ = 1;
  Quantiles latencies_;
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

Run::Run(const Scenario& scenario, std::string algorithm, double span_s)
    : simulation_(std::make_unique<Simulation>(scenario, std::move(algorithm), span_s)) {}
Run::~Run() = default;
Run::Run(Run&&) noexcept = default;

Expected<bool> Run::start() {
  return simulation_->start();
}
void Run::offer(const Request& request) {
  simulation_->offer(request);
}
Result Run::finish() {
  return simulation_->finish();
}

Expected<bool> check_run(const Scenario& scenario, const std::string& algorithm) {
  if (scenario.servers.empty()) return Error{"the scenario has no servers"};
  if (!balance::find_algorithm(algorithm)) return Error{"unknown algorithm '" + algorithm + "'"};
  return true;
}

Expected<Result> simulate(const Scenario& scenario, const std::string& algorithm) {
  if (auto checked = check_run(scenario, algorithm); !checked) return checked.error();
  // The requests are drawn before the run from the run's own generator, which the random
  // algorithms then go on using: a seed gives the same figures as it always has.
  Simulation simulation(scenario, algorithm, 0);
  auto requests = make_requests(scenario, simulation.rng());
  if (!requests) return requests.error();
  if (requests->empty()) return Error{"the scenario has no requests"};
  simulation.set_span(requests->back().arrival_s);
  if (auto started = simulation.start(); !started) return started.error();
  for (const Request& request : *requests) simulation.offer(request);
  return simulation.finish();
}

}  // namespace usher::sim
