#pragma once
// Passive health (outlier ejection): a backend that fails real traffic `consecutive_failures`
// times in a row leaves its pool for base x (ejections so far + 1), unless that would eject more
// than the allowed share of the pool; active checks bring it back. A pure state machine over the
// backend's shared counters: no clock (time is an argument), no I/O. Workers race on the same
// backend and agree through one compare-exchange: exactly one of them ejects it.
#include <cstdint>
#include <optional>

#include "balance/live.h"
#include "config/config.h"

namespace usher::health {

struct Ejection {
  uint64_t until_ms;
  uint32_t times;  // this backend's ejections so far, this one included
};

class Outlier {
 public:
  explicit Outlier(const config::Outlier& rule) : rule_(rule) {}

  // Records one outcome on the backend. True when it reached the failure streak that may eject
  // it: the caller then counts its pool and calls eject().
  bool observe(balance::BackendLive& backend, bool failed) const;

  // Ejects the backend unless `ejected` of the pool's `members` already are as many as allowed,
  // or another worker ejected it first.
  std::optional<Ejection> eject(balance::BackendLive& backend, uint32_t ejected, uint32_t members,
                                uint64_t now_ms) const;

  const config::Outlier& rule() const { return rule_; }

 private:
  const config::Outlier& rule_;
};

}  // namespace usher::health
