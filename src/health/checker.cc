#include "health/checker.h"

#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>
#include <algorithm>
#include <string>
#include <system_error>

#include "balance/picker.h"
#include "health/probe.h"
#include "health/state.h"
#include "net/socket.h"

namespace usher::health {

// A socket pair whose far end stop() writes to, ending a check loop's wait early.
std::pair<int, int> wake_pair() {
  int fds[2] = {-1, -1};
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) < 0) {
    throw std::system_error(errno, std::generic_category(), "socketpair");
  }
  return {fds[0], fds[1]};
}

// One backend under check.
struct Checker::Target {
  Target(net::Reactor& reactor, const CheckTarget& target, std::pair<int, int> fds)
      : what(target),
        wake(reactor, fds.first),
        wake_writer(fds.second),
        state(target.check->rise, target.check->fall) {
    // A backend that a reload kept comes with what checks knew of it: down stays down until it
    // earns `rise` successes, up needs no new rise.
    const balance::BackendLive& live = (*target.pool_live)[target.backend];
    const bool member = !(live.admin_state.load(std::memory_order_acquire) & balance::kRemoved);
    if (member && live.awaiting_first_check.load(std::memory_order_relaxed)) {
      state.await_first_check();
    } else if (member && !live.healthy.load(std::memory_order_relaxed)) {
      state.force_down();
    }
  }
  ~Target() { ::close(wake_writer); }

  CheckTarget what;
  std::string request;
  net::Socket wake;
  int wake_writer;
  char wake_byte = 0;
  HealthState state;
  std::atomic<bool> stopping{false};
};

Checker::Checker(const std::vector<CheckTarget>& targets)
    : reactor_(net::make_epoll_reactor(net::EpollWrites::kOneByOne)) {
  for (const CheckTarget& target : targets) {
    targets_.push_back(std::make_unique<Target>(*reactor_, target, wake_pair()));
  }
}

Checker::~Checker() {
  stop();
}

void Checker::start() {
  if (targets_.empty()) return;
  running_ = targets_.size();
  thread_ = std::thread([this] {
    for (auto& target : targets_) net::spawn(run(*target));
    reactor_->run({});
  });
}

void Checker::stop() {
  if (!thread_.joinable()) return;
  for (auto& target : targets_) {
    target->stopping = true;
    [[maybe_unused]] ssize_t n = ::write(target->wake_writer, "x", 1);
  }
  thread_.join();
}

void Checker::update_panic(const CheckTarget& what) {
  if (what.panic_percent <= 0) return;
  balance::LiveState& live = *what.pool_live;
  const double healthy_percent = 100.0 * live.healthy_count() / std::max(live.member_count(), 1u);
  const bool panic = healthy_percent < what.panic_percent;
  if (panic == live.panic()) return;
  live.set_panic(panic);
  spdlog::warn("health: pool={} {} panic: {:.0f}% of backends healthy, threshold {:.0f}%{}",
               what.pool, panic ? "enters" : "leaves", healthy_percent, what.panic_percent,
               panic ? ": spreading over all backends" : "");
}

bool Checker::take_published(Target& t, const std::string& who) {
  if (!t.what.shared || t.what.shared->lease.load() != SharedHealth::kProbedElsewhere) return false;
  const int8_t verdict = t.what.shared->published.load();
  if (verdict < 0) return false;  // the holder has not said yet: probe meanwhile
  // Ours is the holder's while it holds the lease: a takeover then starts from the verdict in
  // force, not from what this instance last probed long ago.
  t.what.shared->ours.store(verdict);
  const bool was_healthy = t.state.healthy();
  if ((verdict == 1) != was_healthy) {
    verdict == 1 ? t.state.force_up() : t.state.force_down();
    spdlog::warn("health: {} {} -> {} as the cluster's prober says", who,
                 was_healthy ? "UP" : "DOWN", was_healthy ? "DOWN" : "UP");
    publish(t, was_healthy);
  }
  return true;
}

// A change of state reaches the pickers (and the counters of changes) of every worker.
void Checker::publish(Target& t, bool was_healthy) {
  balance::BackendLive& live = (*t.what.pool_live)[t.what.backend];
  if (!was_healthy) {
    live.serving_since_ms.store(net::monotonic_ms(), std::memory_order_relaxed);
    live.ejected_until_ms.store(0, std::memory_order_relaxed);
    live.awaiting_first_check.store(false, std::memory_order_relaxed);
  }
  live.healthy.store(t.state.healthy(), std::memory_order_relaxed);
  (was_healthy ? live.went_down : live.went_up).fetch_add(1, std::memory_order_relaxed);
  update_panic(t.what);
}

net::Task<void> Checker::run(Target& t) {
  const config::HealthCheck& check = *t.what.check;
  const auto interval = static_cast<uint64_t>(check.interval.count());
  // Checks of many backends spread over the interval instead of arriving together; each later
  // wait varies by up to 10 % for the same reason.
  uint64_t jitter = balance::hash_key(t.what.pool + "/" + std::to_string(t.what.backend));
  auto next_jitter = [&jitter] {
    return jitter = balance::hash_key({reinterpret_cast<char*>(&jitter), 8});
  };
  uint64_t delay = next_jitter() % interval;
  // A backend waiting for its first pass serves nothing until then: checked at once.
  if (t.state.awaiting_first_check()) delay = 0;
  std::string who;
  while (!t.stopping) {
    // Waits out the delay, or until stop() signals the eventfd.
    co_await t.wake.read(&t.wake_byte, 1, reactor_->now_ms() + delay);
    if (t.stopping) break;
    balance::BackendLive& live = (*t.what.pool_live)[t.what.backend];
    if (live.admin_state.load(std::memory_order_acquire) & balance::kRemoved) {
      delay = interval;
      continue;
    }
    if (t.request.empty()) {  // first check of this member
      t.request = health_request(*t.what.check, *t.what.address);
      who = "pool=" + t.what.pool + " backend=" + t.what.address->to_string();
    }
    const uint64_t ejected_until = live.ejected_until_ms.load(std::memory_order_relaxed);
    if (ejected_until != 0) {
      if (t.state.healthy()) t.state.force_down();
      // No checks while the ejection lasts: it is the backend's time to recover.
      if (net::monotonic_ms() < ejected_until) {
        delay = std::min<uint64_t>(interval, ejected_until - net::monotonic_ms());
        continue;
      }
    }
    if (take_published(t, who)) {
      delay = interval;
      continue;
    }
    const uint64_t started = net::monotonic_ms();
    ProbeResult result = co_await probe(*reactor_, *t.what.address, check, t.request,
                                        {t.what.tls.get(), t.what.backend});
    const uint64_t took = net::monotonic_ms() - started;
    const bool was_healthy = t.state.healthy();
    const uint32_t needed = t.state.needed();
    const bool flipped = t.state.observe(result.ok);
    if (t.what.shared) {
      // A backend this instance ejected (passive checks, its own traffic) earns its way back
      // here alone: its verdict is not the cluster's until then.
      const bool ejected = live.ejected_until_ms.load(std::memory_order_relaxed) != 0;
      t.what.shared->ours.store(ejected ? -1 : t.state.healthy() ? 1 : 0);
    }
    if (flipped) {
      spdlog::warn("health: {} {} -> {} after {} {} checks (last: {}, {} ms)", who,
                   was_healthy ? "UP" : "DOWN", was_healthy ? "DOWN" : "UP", needed,
                   result.ok ? "passed" : "failed", result.detail, took);
      publish(t, was_healthy);
    } else if (t.state.streak() > 0) {
      spdlog::info("health: {} check {} ({}, {} ms): {} {}/{}", who,
                   result.ok ? "passed" : "failed", result.detail, took,
                   result.ok ? "rise" : "fall", t.state.streak(), t.state.needed());
    }
    delay = interval - interval / 10 + next_jitter() % (interval / 5 + 1);
  }
  if (--running_ == 0) reactor_->stop();
}

}  // namespace usher::health
