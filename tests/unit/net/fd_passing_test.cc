#include "net/fd_passing.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <vector>

namespace usher::net {
namespace {

class FdPassingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto pair = fd_passing_pair();
    ASSERT_TRUE(pair) << pair.error().message;
    std::tie(a_, b_) = *pair;
  }
  void TearDown() override {
    if (a_ >= 0) ::close(a_);
    if (b_ >= 0) ::close(b_);
  }
  int a_ = -1;
  int b_ = -1;
};

TEST_F(FdPassingTest, APassedDescriptorReachesTheSameFile) {
  int pipe_fds[2];
  ASSERT_EQ(::pipe(pipe_fds), 0);
  ASSERT_EQ(send_fds(a_, "tcp 127.0.0.1:80\n", std::vector<int>{pipe_fds[1]}), "");
  ::close(pipe_fds[1]);
  auto message = receive_fds(b_);
  ASSERT_TRUE(message) << message.error().message;
  EXPECT_EQ(message->text, "tcp 127.0.0.1:80\n");
  ASSERT_EQ(message->fds.size(), 1u);
  ASSERT_EQ(::write(message->fds[0], "x", 1), 1);
  ::close(message->fds[0]);
  char c = 0;
  EXPECT_EQ(::read(pipe_fds[0], &c, 1), 1);
  EXPECT_EQ(c, 'x');
  EXPECT_EQ(::read(pipe_fds[0], &c, 1), 0);  // no writer is left: the passed one was the last
  ::close(pipe_fds[0]);
}

TEST_F(FdPassingTest, MessagesKeepTheirBoundariesAndAnEmptyOneStaysEmpty) {
  ASSERT_EQ(send_fds(a_, "first", {}), "");
  ASSERT_EQ(send_fds(a_, "", {}), "");
  auto first = receive_fds(b_);
  auto second = receive_fds(b_);
  ASSERT_TRUE(first && second);
  EXPECT_EQ(first->text, "first");
  EXPECT_EQ(second->text, "");
  EXPECT_TRUE(second->fds.empty());
}

TEST_F(FdPassingTest, TooManyDescriptorsAreRefusedBeforeSending) {
  std::vector<int> many(kMaxFdsPerMessage + 1, 0);
  EXPECT_NE(send_fds(a_, "x", many), "");
}

TEST_F(FdPassingTest, AClosedPeerIsAnError) {
  ::close(std::exchange(a_, -1));
  auto message = receive_fds(b_);
  ASSERT_FALSE(message);
  EXPECT_NE(message.error().message.find("closed"), std::string::npos);
}

}  // namespace
}  // namespace usher::net
