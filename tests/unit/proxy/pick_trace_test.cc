#include "proxy/l7/pick_trace.h"

#include <gtest/gtest.h>

#include <array>
#include <string>

#include "metrics/registry.h"

namespace usher::proxy::l7 {
namespace {

class PickTraceTest : public ::testing::Test {
 protected:
  PickTraceTest() : registry(1) {
    config.name = "web";
    config.balance = "least-connections";
    config.max_connections = 2;
    for (const char* name : {"a", "b", "c", "d", "e", "f"}) {
      config::Backend b;
      b.address =
          *Address::parse(std::string("10.0.0.1:") + std::to_string(80 + config.backends.size()));
      b.name = name;
      config.backends.push_back(b);
    }
    pool = std::make_unique<PoolState>(config, registry, nullptr);
  }

  std::string describe(const PickTrace& trace, uint32_t picked) {
    std::array<char, 320> text;
    return std::string(describe_pick(trace, *pool, picked, text));
  }

  config::Pool config;
  metrics::Registry registry;
  std::unique_ptr<PoolState> pool;
};

// Each reason a member cannot be chosen, in the order the checks make them.
TEST_F(PickTraceTest, NamesEverySkipWithItsReason) {
  balance::LiveState& live = pool->live;
  live[0].healthy = false;
  live[1].healthy = false;
  live[1].ejected_until_ms = 5000;
  live[2].healthy = false;
  live[2].awaiting_first_check = true;
  live[3].admin_state = balance::kDraining;
  live[4].active = 2;  // at max_connections
  PickTrace trace;
  record_candidates(trace, *pool);
  EXPECT_EQ(trace.members, 6);
  EXPECT_EQ(describe(trace, 5),
            "least-connections picked f of 6; skipped a unhealthy, b ejected, c "
            "awaiting-first-check, d draining, e full");
}

TEST_F(PickTraceTest, RecordsOnceAndNamesFailedTriesStickyAndQueue) {
  PickTrace trace;
  record_candidates(trace, *pool);
  pool->live[0].admin_state = balance::kDisabled;
  record_candidates(trace, *pool);  // the first pick's view stays
  trace.sticky = true;
  trace.queued = true;
  record_failed_try(trace, 0, Failure::upstream(Failure::Cause::kConnect, 502, true));
  record_failed_try(trace, 1, Failure::upstream(Failure::Cause::kStatus, 503, true));
  EXPECT_EQ(
      describe(trace, 2),
      "sticky cookie picked c of 6 after a wait in the queue; failed a connect, b status 503");
  EXPECT_EQ(describe(PickTrace{}, balance::kNoBackend), "least-connections picked none of 0");
}

TEST_F(PickTraceTest, ManySkipsAreCountedAndALongLineIsCut) {
  for (uint32_t i = 0; i < 6; ++i) pool->live[i].admin_state = balance::kDisabled;
  PickTrace trace;
  trace.members = 20;
  trace.skipped = 20;
  for (uint32_t i = 0; i < PickTrace::kSkipsNamed; ++i)
    trace.skips[i] = {i % 6, SkipReason::kDisabled};
  EXPECT_NE(describe(trace, balance::kNoBackend).find("(+12 more)"), std::string::npos);
  std::array<char, 16> tiny;
  EXPECT_EQ(describe_pick(trace, *pool, 0, tiny), "least-connection");
}

}  // namespace
}  // namespace usher::proxy::l7
