// Compiling 1M allow/deny prefixes (target < 1 s) and looking an address up in them (target
// < 200 ns), IPv4 and IPv6, hits and misses. Run: build/bench/protect_bench
#include <arpa/inet.h>
#include <benchmark/benchmark.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "protect/ip_filter.h"

namespace {

using usher::IpBytes;
using usher::IpRange;
using usher::protect::PrefixSet;

// The issue's list: half IPv4 /8../32, half IPv6 /16../128, uniformly random. So many random
// short IPv4 prefixes cover all of IPv4, which merges to one interval; kDeepV4 keeps IPv4 to
// /24../32 (blocklist-like) so its table stays ~500k intervals deep, the slow case for lookups.
enum Mix { kIssue = 0, kDeepV4 = 1 };

std::string text(const IpBytes& ip) {
  char buffer[INET6_ADDRSTRLEN];
  const void* raw = ip.family == AF_INET ? ip.bytes.data() + 12 : ip.bytes.data();
  return ::inet_ntop(ip.family, raw, buffer, sizeof buffer);
}

IpBytes random_ip(std::mt19937_64& rng, int family) {
  IpBytes ip;
  ip.family = family;
  const uint64_t hi = rng();
  const uint64_t lo = rng();
  for (int i = 0; i < 8; ++i) {
    ip.bytes[i] = static_cast<uint8_t>(hi >> (8 * i));
    ip.bytes[8 + i] = static_cast<uint8_t>(lo >> (8 * i));
  }
  if (family == AF_INET) std::fill_n(ip.bytes.begin(), 12, 0);
  if (family == AF_INET6 && ip.bytes[0] == 0) ip.bytes[0] = 0x20;  // never ::ffff:a.b.c.d
  return ip;
}

// "a.b.c.d/N" and "x:y::/N" texts, as a config would hold them; fixed seed.
const std::vector<std::string>& texts(int64_t count, Mix mix) {
  static std::map<std::pair<int64_t, Mix>, std::vector<std::string>> cache;
  auto& out = cache[{count, mix}];
  if (!out.empty()) return out;
  std::mt19937_64 rng(42 + mix);
  for (int64_t i = 0; i < count; ++i) {
    const bool v4 = i % 2 == 0;
    const unsigned bits = v4 ? (mix == kIssue ? 8 + rng() % 25 : 24 + rng() % 9) : 16 + rng() % 113;
    out.push_back(text(random_ip(rng, v4 ? AF_INET : AF_INET6)) + "/" + std::to_string(bits));
  }
  return out;
}

std::vector<IpRange> parse_all(const std::vector<std::string>& list) {
  std::vector<IpRange> ranges;
  ranges.reserve(list.size());
  for (const std::string& t : list) ranges.push_back(*IpRange::parse(t));
  return ranges;
}

const std::vector<IpRange>& ranges(int64_t count, Mix mix) {
  static std::map<std::pair<int64_t, Mix>, std::vector<IpRange>> cache;
  auto& out = cache[{count, mix}];
  if (out.empty()) out = parse_all(texts(count, mix));
  return out;
}

void report_size(benchmark::State& state, const PrefixSet& set, size_t prefixes) {
  state.counters["intervals"] = static_cast<double>(set.intervals());
  state.counters["bytes_per_prefix"] = static_cast<double>(set.memory_bytes()) / prefixes;
  state.counters["MiB"] = static_cast<double>(set.memory_bytes()) / (1 << 20);
}

// Compiling already parsed ranges: what a reload pays on top of reading the config.
void BM_Build(benchmark::State& state) {
  const auto& list = ranges(state.range(0), static_cast<Mix>(state.range(1)));
  PrefixSet set;
  for (auto _ : state) {
    set = PrefixSet::build(list);
    benchmark::DoNotOptimize(set);
  }
  report_size(state, set, list.size());
}

// From text: IpRange::parse of every prefix, then compiling.
void BM_ParseAndBuild(benchmark::State& state) {
  const auto& list = texts(state.range(0), static_cast<Mix>(state.range(1)));
  for (auto _ : state) {
    const std::vector<IpRange> parsed = parse_all(list);
    PrefixSet set = PrefixSet::build(parsed);
    benchmark::DoNotOptimize(set);
  }
}

// Probes: half an address inside a random listed prefix of the family, half a random address.
// Each probe's index depends on the previous answer, so this measures a lookup's latency (one
// accept's wait), not the throughput of many lookups overlapped by the CPU.
void lookup(benchmark::State& state, int family) {
  const auto& list = ranges(state.range(0), static_cast<Mix>(state.range(1)));
  const PrefixSet set = PrefixSet::build(list);
  std::mt19937_64 rng(7);
  std::vector<IpBytes> probes;
  constexpr size_t kProbes = 1 << 16;
  while (probes.size() < kProbes) {
    IpBytes ip = random_ip(rng, family);
    if (probes.size() % 2 == 0) {
      const IpRange& r = list[rng() % list.size()];
      if (r.network().family != family) continue;
      for (unsigned bit = 0; bit < r.prefix_bits(); ++bit) {  // the prefix's bits, random rest
        const auto mask = static_cast<uint8_t>(0x80 >> (bit % 8));
        ip.bytes[bit / 8] = (ip.bytes[bit / 8] & ~mask) | (r.network().bytes[bit / 8] & mask);
      }
    }
    probes.push_back(ip);
  }
  std::shuffle(probes.begin(), probes.end(), rng);  // else the skip below would follow the hits
  size_t hits = 0;
  size_t i = 0;
  for (auto _ : state) {
    const bool hit = set.contains(probes[i]);
    hits += hit;
    i = (i + 1 + hit) & (kProbes - 1);
  }
  state.counters["hit_ratio"] = static_cast<double>(hits) / state.iterations();
  report_size(state, set, list.size());
}

void BM_LookupV4(benchmark::State& state) {
  lookup(state, AF_INET);
}
void BM_LookupV6(benchmark::State& state) {
  lookup(state, AF_INET6);
}

void sizes(benchmark::internal::Benchmark* b) {
  for (Mix mix : {kIssue, kDeepV4}) {
    for (int64_t n : {1'000, 1'000'000}) b->Args({n, mix});
  }
  b->ArgNames({"prefixes", "mix"});
}

BENCHMARK(BM_Build)->Apply(sizes)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_ParseAndBuild)->Args({1'000'000, kIssue})->Unit(benchmark::kMillisecond);
BENCHMARK(BM_LookupV4)->Apply(sizes);
BENCHMARK(BM_LookupV6)->Apply(sizes);

}  // namespace

BENCHMARK_MAIN();
