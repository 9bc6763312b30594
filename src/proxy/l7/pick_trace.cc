#include "proxy/l7/pick_trace.h"

#include <fmt/format.h>

#include <algorithm>

namespace usher::proxy::l7 {

namespace {

// Why the algorithm could not choose member i now; false when it could.
bool skip_reason(const balance::LiveState& live, uint32_t i, SkipReason& reason) {
  const balance::BackendLive& b = live[i];
  const uint8_t admin = b.admin_state.load(std::memory_order_relaxed);
  if (admin & balance::kDisabled) {
    reason = SkipReason::kDisabled;
  } else if (admin & balance::kDraining) {
    reason = SkipReason::kDraining;
  } else if (!live.serving(i)) {
    reason = b.ejected_until_ms.load(std::memory_order_relaxed) != 0  ? SkipReason::kEjected
             : b.awaiting_first_check.load(std::memory_order_relaxed) ? SkipReason::kAwaitingCheck
                                                                      : SkipReason::kUnhealthy;
  } else if (!live.has_room(i)) {
    reason = SkipReason::kFull;
  } else {
    return false;
  }
  return true;
}

std::string_view reason_text(SkipReason reason) {
  switch (reason) {
    case SkipReason::kUnhealthy:
      return "unhealthy";
    case SkipReason::kAwaitingCheck:
      return "awaiting-first-check";
    case SkipReason::kEjected:
      return "ejected";
    case SkipReason::kDraining:
      return "draining";
    case SkipReason::kDisabled:
      return "disabled";
    case SkipReason::kFull:
      return "full";
  }
  return "?";
}

std::string_view cause_text(Failure::Cause cause) {
  switch (cause) {
    case Failure::Cause::kConnect:
      return "connect";
    case Failure::Cause::kStale:
    case Failure::Cause::kReset:
      return "reset";
    case Failure::Cause::kTimeout:
      return "timeout";
    case Failure::Cause::kProtocol:
      return "protocol";
    case Failure::Cause::kStatus:
      return "status";
    case Failure::Cause::kNone:
      break;
  }
  return "none";
}

// Appends to a fixed buffer, dropping what does not fit.
struct Line {
  std::span<char> out;
  size_t size = 0;

  template <typename... Args>
  void add(fmt::format_string<Args...> format, Args&&... args) {
    const auto result =
        fmt::format_to_n(out.data() + size, out.size() - size, format, std::forward<Args>(args)...);
    size = std::min(out.size(), size + result.size);
  }
};

}  // namespace

void record_candidates(PickTrace& trace, const PoolState& pool) {
  if (trace.recorded) return;
  trace.recorded = true;
  pool.for_each_member([&](uint32_t i) {
    ++trace.members;
    SkipReason reason;
    if (!skip_reason(pool.live, i, reason)) return;
    if (trace.skipped < PickTrace::kSkipsNamed) trace.skips[trace.skipped] = {i, reason};
    ++trace.skipped;
  });
}

void record_failed_try(PickTrace& trace, uint32_t backend, const Failure& failure) {
  if (trace.failed >= PickTrace::kTriesNamed) return;
  trace.tries[trace.failed++] = {backend, failure.cause, static_cast<uint16_t>(failure.status)};
}

std::string_view describe_pick(const PickTrace& trace, const PoolState& pool, uint32_t picked,
                               std::span<char> out) {
  Line line{out};
  const std::string_view chooser =
      trace.sticky ? std::string_view("sticky cookie") : std::string_view(pool.config.balance);
  const std::string_view name =
      picked == balance::kNoBackend ? std::string_view("none") : pool.slot(picked).name;
  line.add("{} picked {} of {}", chooser, name, trace.members);
  if (trace.queued) line.add(" after a wait in the queue");
  for (uint16_t i = 0; i < trace.skipped; ++i) {
    if (i == PickTrace::kSkipsNamed) {
      line.add(" (+{} more)", trace.skipped - i);
      break;
    }
    const PickTrace::Skip& skip = trace.skips[i];
    line.add("{}{} {}", i ? ", " : "; skipped ", pool.slot(skip.backend).name,
             reason_text(skip.reason));
  }
  for (uint8_t i = 0; i < trace.failed; ++i) {
    const PickTrace::FailedTry& t = trace.tries[i];
    line.add("{}{} {}", i ? ", " : "; failed ", pool.slot(t.backend).name, cause_text(t.cause));
    if (t.cause == Failure::Cause::kStatus) line.add(" {}", t.status);
  }
  return {out.data(), line.size};
}

}  // namespace usher::proxy::l7
