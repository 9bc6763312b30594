#pragma once
// Why a request went where it did: the pool's members at its first pick and those the algorithm
// could not choose (with why), whether a sticky cookie or the pool's queue chose instead, and
// each try that failed with its cause. Kept with the request; the access log's `pick` field and,
// with a listener's debug_headers, the X-Usher-Pick response field say it in one line.
// Worker thread only.
#include <array>
#include <cstdint>
#include <span>
#include <string_view>

#include "proxy/l7/failure.h"
#include "proxy/pool_state.h"

namespace usher::proxy::l7 {

enum class SkipReason : uint8_t {
  kUnhealthy,
  kAwaitingCheck,
  kEjected,
  kDraining,
  kDisabled,
  kFull
};

struct PickTrace {
  static constexpr size_t kSkipsNamed = 8;  // beyond these, skipped backends are only counted
  static constexpr size_t kTriesNamed = 4;

  struct Skip {
    uint32_t backend;
    SkipReason reason;
  };
  struct FailedTry {
    uint32_t backend;
    Failure::Cause cause;
    uint16_t status;  // what that try would have answered
  };

  bool recorded = false;
  bool sticky = false;  // the client's sticky cookie named the backend
  bool queued = false;  // it waited in the pool's queue for a backend with room
  uint16_t members = 0;
  uint16_t skipped = 0;
  uint8_t failed = 0;
  std::array<Skip, kSkipsNamed> skips;
  std::array<FailedTry, kTriesNamed> tries;
};

// At the request's first pick: the pool's members, and those not usable then.
void record_candidates(PickTrace& trace, const PoolState& pool);
void record_failed_try(PickTrace& trace, uint32_t backend, const Failure& failure);

// One line, as "least-connections picked b of 3; skipped a unhealthy, c draining; failed d
// connect". `picked`: the backend that answered (balance::kNoBackend: none). Truncated to `out`.
std::string_view describe_pick(const PickTrace& trace, const PoolState& pool, uint32_t picked,
                               std::span<char> out);

}  // namespace usher::proxy::l7
