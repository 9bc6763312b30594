#include "app/dns.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <mutex>

namespace usher::app {

namespace {

discovery::DnsName question_of(const config::DnsDiscovery& dns) {
  using Type = config::DnsDiscovery::Type;
  const discovery::RecordType type = dns.type == Type::kSrv    ? discovery::RecordType::kSrv
                                     : dns.type == Type::kAaaa ? discovery::RecordType::kAaaa
                                                               : discovery::RecordType::kA;
  return {dns.name, type, dns.port, static_cast<uint64_t>(dns.floor.count())};
}

// One answer, waited for: the pool's backends, or why there are none.
Expected<std::vector<config::Backend>> ask_once(const config::DnsDiscovery& dns,
                                                const discovery::DnsOptions& options) {
  std::mutex mutex;
  std::condition_variable answered;
  bool done = false;
  std::vector<discovery::Found> found;
  std::string failure;
  discovery::DnsWatch watch(
      {question_of(dns)}, options,
      [&](size_t, std::vector<discovery::Found> answer) {
        std::lock_guard lock(mutex);
        found = std::move(answer);
        done = true;
        answered.notify_one();
      },
      [&](size_t, const std::string& why) {
        std::lock_guard lock(mutex);
        failure = why;
        done = true;
        answered.notify_one();
      });
  if (std::string error = watch.start(); !error.empty()) return Error{error};
  std::unique_lock lock(mutex);
  // Every server tried twice, and a second to spare.
  const auto most = std::chrono::milliseconds(
      options.timeout_ms * 2 * std::max<size_t>(options.servers.size(), 1) + 1000);
  if (!answered.wait_for(lock, most, [&] { return done; })) return Error{"no answer"};
  if (!failure.empty()) return Error{failure};
  return dns_backends(found);
}

const config::Pool* find(const config::Config* config, const std::string& name) {
  if (!config) return nullptr;
  for (const config::Pool& pool : config->pools) {
    if (pool.name == name) return &pool;
  }
  return nullptr;
}

}  // namespace

std::vector<config::Backend> dns_backends(const std::vector<discovery::Found>& found) {
  std::vector<config::Backend> backends;
  for (const discovery::Found& f : found) {
    auto address = Address::parse(f.address);
    if (!address) continue;  // written by the watch from a sockaddr: always an address
    config::Backend b;
    b.address = *address;
    b.name = f.address;
    b.weight = std::clamp<uint32_t>(f.weight, config::kMinWeight, config::kMaxWeight);
    backends.push_back(std::move(b));
  }
  return backends;
}

std::vector<discovery::DnsName> dns_questions(const config::Config& config) {
  std::vector<discovery::DnsName> questions;
  for (const config::Pool& pool : config.pools) {
    if (pool.dns) questions.push_back(question_of(*pool.dns));
  }
  return questions;
}

discovery::DnsOptions dns_options(const config::Config& config) {
  discovery::DnsOptions options;
  for (const Address& server : config.resolvers) options.servers.push_back(server.to_string());
  return options;
}

void resolve_dns_pools(config::Config& config, const config::Config* serving,
                       config::Errors& errors) {
  const discovery::DnsOptions options = dns_options(config);
  for (config::Pool& pool : config.pools) {
    if (!pool.dns) continue;
    const config::Pool* before = find(serving, pool.name);
    if (before && before->dns == pool.dns) {
      pool.backends = before->backends;
      continue;
    }
    auto backends = ask_once(*pool.dns, options);
    if (backends) {
      pool.backends = std::move(*backends);
    } else {
      errors.add(pool.marks.where(config.source, "discovery") + "dns " + pool.dns->name + ": " +
                 backends.error().message + "; a pool starts only with an answer");
    }
  }
}

}  // namespace usher::app
