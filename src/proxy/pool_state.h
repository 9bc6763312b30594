#pragma once
// What all workers share about one pool: its immutable backend snapshot, the picker built from
// it, and the live counters. Read lock-free from every worker; counters are relaxed atomics.
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "balance/live.h"
#include "balance/picker.h"
#include "balance/snapshot.h"
#include "config/config.h"
#include "proxy/retry_budget.h"

namespace usher::proxy {

// The opaque id a sticky cookie names a backend by, and the Set-Cookie lines that pin to it.
// Ids hash the pool name, the backend address and the configured secret: the same on every
// usher instance with the same configuration, and across restarts.
struct StickyBackend {
  std::string id;
  std::string set_cookie;         // "Set-Cookie: NAME=ID; ...\r\n"
  std::string set_cookie_secure;  // the same with Secure, for clients on HTTPS
};

struct PoolState {
  PoolState(const config::Pool& pool, uint32_t id, uint32_t first_backend_id);

  // Worker thread: the backend a sticky cookie's id names, or balance::kNoBackend.
  uint32_t sticky_backend(std::string_view id) const;

  const config::Pool& config;
  uint32_t id;  // position in the configuration's pools
  balance::BackendSnapshot snapshot;
  balance::Options options;
  std::unique_ptr<balance::Picker> picker;
  balance::KeySource key_source;
  uint32_t first_backend_id;  // backends are numbered process-wide for per-worker tables
  balance::LiveState live;
  RetryBudget retry_budget;
  std::vector<StickyBackend> sticky;  // by backend index; empty without `sticky`
  alignas(64) std::atomic<uint64_t> ticket{0};
};

}  // namespace usher::proxy
