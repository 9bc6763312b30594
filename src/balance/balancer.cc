#include "balance/balancer.h"

#include <algorithm>

namespace usher::balance {

Expected<std::unique_ptr<Balancer>> Balancer::build(std::string_view algorithm,
                                                    BackendSnapshot snapshot,
                                                    const Options& options) {
  const AlgorithmInfo* info = find_algorithm(algorithm);
  auto picker = balance::build(algorithm, snapshot, options);
  if (!picker) return picker.error();
  return std::unique_ptr<Balancer>(
      new Balancer(std::move(snapshot), std::move(*picker), info->key));
}

uint32_t Balancer::next(Candidates& candidates, const LiveState& live) const {
  const auto tried = candidates.tried();
  uint32_t backend = tried.empty() ? picker_->pick(candidates.input(), live)
                                   : picker_->fallback(candidates.input(), tried, live);
  // Every usable backend failed once: they are tried again in turn (one backend is retried).
  if (backend == kNoBackend && !tried.empty()) backend = live.next_usable(tried.back());
  if (backend != kNoBackend) candidates.add_tried(backend);
  return backend;
}

uint32_t Picker::fallback(const PickInput&, std::span<const uint32_t> tried, LiveView live) const {
  const uint32_t after = tried.empty() ? count_ - 1 : tried.back();
  for (uint32_t step = 1; step <= count_; ++step) {
    const uint32_t i = (after + step) % count_;
    if (live.usable(i) && std::find(tried.begin(), tried.end(), i) == tried.end()) return i;
  }
  return kNoBackend;
}

}  // namespace usher::balance
