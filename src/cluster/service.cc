#include "cluster/service.h"

#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <openssl/rand.h>
#include <algorithm>
#include <cstring>
#include <string_view>

#include "net/reactor.h"
#include "tls/tickets.h"

namespace usher::cluster {

namespace {

// Loopback or a LAN: a Redis slower than this is treated as gone, and the waiting requests are
// decided without it rather than held.
constexpr std::chrono::milliseconds kRedisTimeout{250};
constexpr uint64_t kReconnectMs = 500;
// How often the loop wakes with nothing asked: the health file's and the link's pace.
constexpr int kTickMs = 100;

}  // namespace

namespace {

// Who holds a probe lease: this process, on this machine.
std::string instance_name() {
  unsigned char id[8];
  if (RAND_bytes(id, sizeof id) != 1) return std::to_string(::getpid());
  std::string hex;
  for (unsigned char b : id) hex += "0123456789abcdef"[b >> 4], hex += "0123456789abcdef"[b & 15];
  return hex;
}

}  // namespace

Service::Service() : link_(kRedisTimeout), health_share_(instance_name()) {
  wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
}

Service::~Service() {
  stop();
  if (wake_fd_ >= 0) ::close(wake_fd_);
}

WorkerPort& Service::add_worker(net::Reactor& reactor) {
  ports_.push_back(std::make_unique<WorkerPort>(*this, reactor, ports_.size()));
  return *ports_.back();
}

void Service::set_fitness(std::function<std::optional<bool>()> fitness) {
  fitness_ = std::move(fitness);
}

void Service::configure(const config::Config& config) {
  Settings next{.cluster = config.cluster, .ticket_periods = {}};
  for (const config::Listener& listener : config.listeners) {
    if (!listener.tls || !listener.tls->session_tickets.cluster) continue;
    const auto period =
        static_cast<std::time_t>(listener.tls->session_tickets.rotate.count() / 1000);
    if (std::find(next.ticket_periods.begin(), next.ticket_periods.end(), period) ==
        next.ticket_periods.end()) {
      next.ticket_periods.push_back(period);
    }
  }
  configured_.store(config.cluster.redis.has_value(), std::memory_order_relaxed);
  {
    std::lock_guard lock(settings_mutex_);
    pending_ = std::move(next);
  }
  wake();
}

void Service::share_health(std::vector<SharedBackend> backends) {
  {
    std::lock_guard lock(settings_mutex_);
    pending_health_ = std::move(backends);
  }
  wake();
}

void Service::start() {
  if (thread_.joinable()) return;
  thread_ = std::thread([this] { run(); });
}

void Service::stop() {
  if (!thread_.joinable()) return;
  stopping_.store(true);
  wake();
  thread_.join();
  // A stopping usher gives the address up; one that handed its sockets to a successor (binary
  // upgrade) leaves the file to it.
  if (!fitness_ || fitness_().has_value()) write_health(false);
}

void Service::wake() {
  const uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(wake_fd_, &one, sizeof one);
}

void Service::run() {
  std::vector<std::pair<WorkerPort*, LeaseRequest>> batch;
  while (!stopping_.load()) {
    pollfd p{.fd = wake_fd_, .events = POLLIN, .revents = 0};
    if (::poll(&p, 1, kTickMs) > 0) {
      uint64_t count;
      [[maybe_unused]] ssize_t n = ::read(wake_fd_, &count, sizeof count);
    }
    adopt_settings();
    keep_link(net::monotonic_ms());
    keep_ticket_keys(net::monotonic_ms());
    keep_health(net::monotonic_ms());
    for (auto& port : ports_) {
      while (auto request = port->requests_.pop()) batch.emplace_back(port.get(), *request);
    }
    if (!batch.empty()) serve(batch);
    batch.clear();
    if (fitness_) {
      if (std::optional<bool> fit = fitness_()) write_health(*fit);
    }
  }
}

void Service::write_health(bool fit) {
  if (std::string error = health_file_.update(fit, net::monotonic_ms()); !error.empty()) {
    spdlog::warn("cluster: {}", error);
  } else if (!settings_.health_file.empty() && fit != std::exchange(last_fit_, fit)) {
    spdlog::info("cluster: health file {}: {}", settings_.health_file,
                 fit ? "0 (fit to hold the address)" : "1 (not fit: gives the address up)");
  }
}

void Service::adopt_settings() {
  std::optional<Settings> next;
  {
    std::lock_guard lock(settings_mutex_);
    next.swap(pending_);
    if (pending_health_) {
      health_share_.set(std::move(*pending_health_));
      pending_health_.reset();
      next_health_ms_ = 0;
    }
  }
  if (!next) return;
  if (std::string error = health_file_.set_path(next->cluster.health_file); !error.empty()) {
    spdlog::warn("cluster: {}", error);
  }
  const bool moved = next->cluster.redis != settings_.redis;
  settings_ = std::move(next->cluster);
  ticket_periods_ = std::move(next->ticket_periods);
  next_tickets_ms_ = 0;
  if (!moved) return;
  link_.close();
  next_connect_ms_ = 0;
  down_logged_ = false;
  if (!settings_.redis) up_.store(false, std::memory_order_relaxed);
}

void Service::set_up(bool up, const std::string& why) {
  const bool was = up_.exchange(up, std::memory_order_relaxed);
  if (up && !was) {
    spdlog::info(
        "cluster: Redis {} reachable; cluster-wide limits are shared (this instance is {})",
        settings_.redis->to_string(), health_share_.instance());
    down_logged_ = false;
  } else if (!up && !down_logged_) {
    // Once per outage: a Redis that stays away is not news every half second.
    spdlog::warn("cluster: Redis {} unreachable ({}); cluster-wide limits are {} until it returns",
                 settings_.redis->to_string(), why,
                 settings_.on_redis_failure == config::Cluster::OnRedisFailure::kLocal
                     ? "enforced by each instance alone"
                     : "denying every request");
    down_logged_ = true;
  }
}

void Service::keep_link(uint64_t now_ms) {
  if (!settings_.redis || link_.connected() || now_ms < next_connect_ms_) return;
  next_connect_ms_ = now_ms + kReconnectMs;
  if (std::string error = link_.connect(*settings_.redis); !error.empty()) {
    return set_up(false, error);
  }
  if (std::string error = prepare_link(); !error.empty()) {
    link_.close();
    return set_up(false, error);
  }
  set_up(true, {});
  next_health_ms_ = 0;
  next_tickets_ms_ = 0;  // a Redis that restarted may have lost them
}

// The scripts loaded, and a write accepted: a read-only replica is no place for leases.
std::string Service::prepare_link() {
  auto why = [this](const Reply& r) {
    return r && r->type == REDIS_REPLY_ERROR ? std::string(r->str, r->len) : link_.error();
  };
  const std::pair<const char*, std::string*> scripts[] = {{kLeaseScript, &script_sha_},
                                                          {kHealthScript, &health_sha_}};
  for (const auto& [script, sha] : scripts) {
    Reply loaded = link_.command({"SCRIPT", "LOAD", script});
    round_trips_.fetch_add(1, std::memory_order_relaxed);
    if (!loaded || loaded->type != REDIS_REPLY_STRING) return "SCRIPT LOAD: " + why(loaded);
    sha->assign(loaded->str, loaded->len);
  }
  Reply written = link_.command(
      {"SET", settings_.key_prefix + "alive:" + health_share_.instance(), "1", "PX", "10000"});
  round_trips_.fetch_add(1, std::memory_order_relaxed);
  if (!written || written->type != REDIS_REPLY_STATUS) return "SET: " + why(written);
  return {};
}

void Service::keep_health(uint64_t now_ms) {
  if (health_share_.empty() || now_ms < next_health_ms_) return;
  next_health_ms_ = now_ms + HealthShare::kSyncMs;
  if (!link_.connected() || !settings_.share_health) return health_share_.probe_everywhere();
  round_trips_.fetch_add(1, std::memory_order_relaxed);
  if (!health_share_.sync(link_, health_sha_, settings_.key_prefix)) set_up(false, link_.error());
}

void Service::reply(WorkerPort& port, LeaseReply r) {
  // A full ring leaves the ask unanswered: its waiters decide without the cluster when their
  // wait ends, and the key asks afresh.
  if (port.replies_.push(std::move(r))) port.reactor_.wake();
}

// All asks of the moment in one pipeline: one round trip however many workers and keys asked.
void Service::serve(std::vector<std::pair<WorkerPort*, LeaseRequest>>& batch) {
  std::vector<std::string> keys;
  std::vector<std::string> numbers;
  keys.reserve(batch.size());
  numbers.reserve(batch.size() * 4);
  for (auto& [port, request] : batch) {
    const LeasePolicy& policy = request.limit->policy();
    keys.push_back(request.limit->redis_key(request.ask.key));
    const size_t first = numbers.size();
    numbers.push_back(std::to_string(policy.interval_us));
    numbers.push_back(std::to_string(policy.burst));
    numbers.push_back(std::to_string(request.ask.want));
    numbers.push_back(std::to_string(request.ask.give_back));
    link_.append({"EVALSHA", script_sha_, "1", keys.back(), numbers[first], numbers[first + 1],
                  numbers[first + 2], numbers[first + 3]});
  }
  if (link_.connected()) round_trips_.fetch_add(1, std::memory_order_relaxed);
  std::vector<LeaseReply> replies;
  replies.reserve(batch.size());
  for (auto& [port, request] : batch) {
    replies.push_back(read_lease(std::move(request)));
  }
  // Down before the answers go: a request woken by an unanswered ask must see Redis gone, or it
  // would ask again.
  if (!link_.connected() && settings_.redis) set_up(false, link_.error());
  for (size_t i = 0; i < batch.size(); ++i) reply(*batch[i].first, std::move(replies[i]));
}

LeaseReply Service::read_lease(LeaseRequest request) {
  LeaseReply out{.limit = std::move(request.limit), .answer = {.key = request.ask.key}};
  Reply answer = link_.next_reply();
  if (answer && answer->type == REDIS_REPLY_ARRAY && answer->elements == 2 &&
      answer->element[0]->type == REDIS_REPLY_INTEGER &&
      answer->element[1]->type == REDIS_REPLY_INTEGER) {
    out.answer.granted = static_cast<uint32_t>(std::max<long long>(0, answer->element[0]->integer));
    out.answer.wait_us = static_cast<uint64_t>(std::max<long long>(0, answer->element[1]->integer));
    (out.answer.granted ? granted_ : refused_).fetch_add(1, std::memory_order_relaxed);
    return out;
  }
  out.unanswered = true;
  if (answer && link_.connected()) {
    // An error (NOSCRIPT after a SCRIPT FLUSH or a restart behind a proxy, OOM): the link is
    // made again, with its scripts, rather than trusted for the next asks.
    link_.close(answer->type == REDIS_REPLY_ERROR ? std::string(answer->str, answer->len)
                                                  : "an answer of the wrong shape");
    next_connect_ms_ = 0;
  }
  return out;
}

}  // namespace usher::cluster
