#pragma once
// A backend's health as seen by active checks: a pure rise/fall machine. `fall` consecutive
// failures take a healthy backend out, `rise` consecutive successes bring it back; a result that
// breaks a streak resets it. No clock, no I/O: the checker feeds it results.
#include <cstdint>

namespace usher::health {

class HealthState {
 public:
  HealthState(uint32_t rise, uint32_t fall) : rise_(rise), fall_(fall) {}

  // Records one check result; true when the backend changed state with it.
  bool observe(bool ok) {
    if (ok) {
      failures_ = 0;
      if (healthy_) return false;
      if (++successes_ < rise_ && !first_pass_enough_) return false;
      first_pass_enough_ = false;
      successes_ = 0;
      healthy_ = true;
      return true;
    }
    successes_ = 0;
    if (!healthy_) return false;
    if (++failures_ < fall_) return false;
    failures_ = 0;
    healthy_ = false;
    return true;
  }

  // Passive checks ejected the backend: it must earn `rise` successes like any down backend.
  void force_down() {
    healthy_ = false;
    successes_ = failures_ = 0;
  }

  // Another instance of the cluster, which holds the backend's probe lease, said it is up.
  void force_up() {
    healthy_ = true;
    successes_ = failures_ = 0;
    first_pass_enough_ = false;
  }

  // A backend that joined a running pool: down until one check passes. It never failed, so
  // one pass is enough (`rise` is for a backend that went down).
  void await_first_check() {
    force_down();
    first_pass_enough_ = true;
  }

  bool awaiting_first_check() const { return first_pass_enough_; }
  bool healthy() const { return healthy_; }
  // The current streak towards a change: failures while healthy, successes while not.
  uint32_t streak() const { return healthy_ ? failures_ : successes_; }
  uint32_t needed() const { return healthy_ ? fall_ : first_pass_enough_ ? 1 : rise_; }

 private:
  uint32_t rise_;
  uint32_t fall_;
  uint32_t successes_ = 0;
  uint32_t failures_ = 0;
  bool healthy_ = true;  // a configured backend is trusted until checks say otherwise
  bool first_pass_enough_ = false;
};

}  // namespace usher::health
