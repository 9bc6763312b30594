// Whole writes through short ones: what a write left of two pieces, and write_all carrying a
// large head and body across a socket that takes a few KiB at a time, on every event loop.
#include "proxy/l7/stream.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "io_backends.h"
#include "net/reactor.h"
#include "net/socket.h"
#include "net/task.h"

namespace usher::proxy::l7 {
namespace {

using net::Task;

TEST(Unwritten, LeavesWhatTheWriteDidNotTakeOfEachPiece) {
  using Pieces = std::pair<std::string_view, std::string_view>;
  EXPECT_EQ(unwritten("head", "body", 0), (Pieces{"head", "body"}));
  EXPECT_EQ(unwritten("head", "body", 3), (Pieces{"d", "body"}));
  EXPECT_EQ(unwritten("head", "body", 4), (Pieces{"", "body"}));
  EXPECT_EQ(unwritten("head", "body", 6), (Pieces{"", "dy"}));
  EXPECT_EQ(unwritten("head", "body", 8), (Pieces{"", ""}));
  EXPECT_EQ(unwritten("", "body", 1), (Pieces{"", "ody"}));
}

class WriteAllTest : public ::testing::TestWithParam<net::IoBackend> {};

TEST_P(WriteAllTest, ArrivesWholeAndInOrderThroughShortWrites) {
  std::string error;
  std::unique_ptr<net::Reactor> reactor = net::make_reactor(GetParam(), error);
  ASSERT_TRUE(reactor) << error;
  int fds[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds), 0);
  int small = 4096;
  ::setsockopt(fds[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
  ::fcntl(fds[1], F_SETFL, 0);  // the reader blocks

  std::string head(100'000, '\0'), body(200'000, '\0');
  for (size_t i = 0; i < head.size(); ++i) head[i] = static_cast<char>('a' + i % 26);
  for (size_t i = 0; i < body.size(); ++i) body[i] = static_cast<char>('0' + i % 10);
  std::string received;
  std::thread reader([&] {
    char buffer[3000];  // less than the writer hands over, so its writes come up short
    for (ssize_t n; (n = ::read(fds[1], buffer, sizeof buffer)) > 0;) received.append(buffer, n);
    ::close(fds[1]);
  });

  bool whole = false;
  std::atomic<bool> done{false};
  // Named: the coroutine reads its captures from this lambda, which must outlive it.
  auto writer = [&]() -> Task<void> {
    {
      net::Socket socket(*reactor, fds[0]);
      const bool sent = co_await write_all(socket, head, body, reactor->now_ms() + 5000);
      whole = sent;
    }  // closing the socket ends the reader
    done = true;
    reactor->stop();
  };
  net::spawn(writer());
  std::thread guard([&] {
    for (int i = 0; i < 5000 && !done; ++i) usleep(1000);
    reactor->stop();
  });
  reactor->run({});
  guard.join();
  reader.join();
  EXPECT_TRUE(whole);
  EXPECT_EQ(received.size(), head.size() + body.size());
  EXPECT_TRUE(received == head + body);
}

INSTANTIATE_TEST_SUITE_P(Backends, WriteAllTest,
                         ::testing::Values(net::IoBackend::kEpoll, net::IoBackend::kIoUring),
                         io_backend_name);

}  // namespace
}  // namespace usher::proxy::l7
