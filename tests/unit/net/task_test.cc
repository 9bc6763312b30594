#include "net/task.h"

#include <gtest/gtest.h>

namespace usher::net {
namespace {

Task<int> immediate(int value) {
  co_return value;
}

Task<void> sum_many(long count, long& sum) {
  for (long i = 0; i < count; ++i) sum += co_await immediate(1);
}

TEST(Task, SynchronousAwaitsInALoopRunAtConstantStackDepth) {
  long sum = 0;
  spawn(sum_many(2'000'000, sum));  // would overflow the stack if each await nested a frame
  EXPECT_EQ(sum, 2'000'000);
}

// An awaitable completed from outside, as the reactor completes I/O.
struct Gate {
  std::coroutine_handle<> waiter;
  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> h) noexcept { waiter = h; }
  int await_resume() const noexcept { return 7; }
};

Task<int> wait_at(Gate& gate) {
  co_return co_await gate;
}

Task<void> parent(Gate& gate, int& out, bool& done) {
  out = co_await wait_at(gate) + co_await immediate(1);
  done = true;
}

TEST(Task, SuspendedChildResumesItsParentWhenItCompletes) {
  Gate gate;
  int out = 0;
  bool done = false;
  spawn(parent(gate, out, done));
  EXPECT_FALSE(done);
  ASSERT_TRUE(gate.waiter);
  gate.waiter.resume();
  EXPECT_TRUE(done);
  EXPECT_EQ(out, 8);
}

}  // namespace
}  // namespace usher::net
