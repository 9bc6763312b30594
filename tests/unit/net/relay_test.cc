// splice_relay on both backends over real loopback TCP: byte-exact bulk transfer, a clean end at
// EOF, and an idle deadline.
#include "net/relay.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fcntl.h>

#include <cerrno>
#include <string>
#include <thread>
#include <vector>

#include "io_backends.h"
#include "loopback.h"

namespace usher::net {
namespace {

class RelayTest : public ::testing::TestWithParam<IoBackend> {
 protected:
  void SetUp() override {
    std::string error;
    reactor = make_reactor(GetParam(), error);
    ASSERT_TRUE(reactor) << error;
  }
  std::unique_ptr<Reactor> reactor;
};

TEST_P(RelayTest, MovesABulkTransferByteExactAndEndsCleanly) {
  constexpr size_t kBytes = 24 << 20;
  auto [source, relay_in] = loopback_tcp_pair();  // a blocking writer -> the relay's input
  auto [relay_out, sink] = loopback_tcp_pair();   // the relay's output -> a blocking reader
  ::fcntl(relay_out, F_SETFL, O_NONBLOCK);
  std::thread writer([source = source] {
    std::vector<char> block(1 << 16);
    for (size_t sent = 0; sent < kBytes;) {
      for (size_t i = 0; i < block.size(); ++i)
        block[i] = static_cast<char>((sent + i) * 131 % 251);
      size_t chunk = std::min(block.size(), kBytes - sent);
      ssize_t n = ::send(source, block.data(), chunk, MSG_NOSIGNAL);
      if (n <= 0) break;
      sent += static_cast<size_t>(n);
    }
    ::shutdown(source, SHUT_WR);
  });
  size_t received = 0, mismatches = 0;
  std::thread reader([sink = sink, &received, &mismatches] {
    ::fcntl(sink, F_SETFL, 0);
    std::vector<char> block(1 << 16);
    while (true) {
      ssize_t n = ::recv(sink, block.data(), block.size(), 0);
      if (n <= 0) break;
      for (ssize_t i = 0; i < n; ++i) {
        if (block[i] != static_cast<char>((received + i) * 131 % 251)) ++mismatches;
      }
      received += static_cast<size_t>(n);
    }
  });
  RelayResult result;
  spawn([](Reactor& r, int in_fd, int out_fd, RelayResult& out) -> Task<void> {
    Socket in(r, in_fd), to(r, out_fd);
    out = co_await splice_relay(in, to, 5000);
    ::shutdown(out_fd, SHUT_WR);
    r.stop();
  }(*reactor, relay_in, relay_out, result));
  reactor->run({});
  writer.join();
  reader.join();
  ::close(source);
  ::close(sink);
  EXPECT_TRUE(result.clean) << result.error;
  EXPECT_EQ(result.bytes, kBytes);
  EXPECT_EQ(received, kBytes);
  EXPECT_EQ(mismatches, 0u);
}

TEST_P(RelayTest, SilenceEndsItAtTheIdleDeadline) {
  auto [source, relay_in] = loopback_tcp_pair();
  auto [relay_out, sink] = loopback_tcp_pair();
  RelayResult result;
  spawn([](Reactor& r, int in_fd, int out_fd, RelayResult& out) -> Task<void> {
    Socket in(r, in_fd), to(r, out_fd);
    out = co_await splice_relay(in, to, 50);
    r.stop();
  }(*reactor, relay_in, relay_out, result));
  reactor->run({});
  ::close(source);
  ::close(sink);
  EXPECT_FALSE(result.clean);
  EXPECT_EQ(result.error, -ETIMEDOUT);
  EXPECT_EQ(result.bytes, 0u);
}

INSTANTIATE_TEST_SUITE_P(Backends, RelayTest,
                         ::testing::Values(IoBackend::kEpoll, IoBackend::kIoUring),
                         io_backend_name);

}  // namespace
}  // namespace usher::net
