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

// A blocking writer of `bytes` of a known pattern into `source` (then its end), and a blocking
// reader of `sink` that counts what arrives and what is out of pattern.
struct PatternedTransfer {
  size_t received = 0;
  size_t mismatches = 0;
  std::thread writer;
  std::thread reader;

  PatternedTransfer(int source, int sink, size_t bytes) {
    writer = std::thread([source, bytes] {
      std::vector<char> block(1 << 16);
      for (size_t sent = 0; sent < bytes;) {
        for (size_t i = 0; i < block.size(); ++i)
          block[i] = static_cast<char>((sent + i) * 131 % 251);
        size_t chunk = std::min(block.size(), bytes - sent);
        ssize_t n = ::send(source, block.data(), chunk, MSG_NOSIGNAL);
        if (n <= 0) break;
        sent += static_cast<size_t>(n);
      }
      ::shutdown(source, SHUT_WR);
    });
    reader = std::thread([this, sink] {
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
  }
  void join() {
    writer.join();
    reader.join();
  }
};

TEST_P(RelayTest, MovesABulkTransferByteExactAndEndsCleanly) {
  constexpr size_t kBytes = 24 << 20;
  auto [source, relay_in] = loopback_tcp_pair();  // a blocking writer -> the relay's input
  auto [relay_out, sink] = loopback_tcp_pair();   // the relay's output -> a blocking reader
  ::fcntl(relay_out, F_SETFL, O_NONBLOCK);
  PatternedTransfer transfer(source, sink, kBytes);
  RelayResult result;
  spawn([](Reactor& r, int in_fd, int out_fd, RelayResult& out) -> Task<void> {
    Socket in(r, in_fd), to(r, out_fd);
    out = co_await splice_relay(in, to, 5000);
    ::shutdown(out_fd, SHUT_WR);
    r.stop();
  }(*reactor, relay_in, relay_out, result));
  reactor->run({});
  transfer.join();
  ::close(source);
  ::close(sink);
  EXPECT_TRUE(result.clean) << result.error;
  EXPECT_EQ(result.bytes, kBytes);
  EXPECT_EQ(transfer.received, kBytes);
  EXPECT_EQ(transfer.mismatches, 0u);
}

// Writes all of `bytes` to `to`; false if a write fails.
Task<bool> write_all(Socket& to, const char* bytes, size_t length) {
  while (length > 0) {
    const long n = co_await to.write(bytes, length, 0);
    if (n <= 0) co_return false;
    bytes += n;
    length -= static_cast<size_t>(n);
  }
  co_return true;
}

// What relay: auto does to a stream: read through the reactor first (on io_uring, its standing
// receive), then end_receive, pass on what the reactor held, and splice the rest. Were the
// standing receive still taking bytes, some would miss the splice and the order would break.
TEST_P(RelayTest, ASocketReadThroughTheReactorMovesOnToSpliceWithoutLosingAByte) {
  constexpr size_t kBytes = 24 << 20;
  auto [source, relay_in] = loopback_tcp_pair();
  auto [relay_out, sink] = loopback_tcp_pair();
  ::fcntl(relay_out, F_SETFL, O_NONBLOCK);
  PatternedTransfer transfer(source, sink, kBytes);
  uint64_t copied = 0;
  RelayResult result;
  spawn([](Reactor& r, int in_fd, int out_fd, uint64_t& copied, RelayResult& out) -> Task<void> {
    Socket in(r, in_fd), to(r, out_fd);
    std::vector<char> buffer(1 << 14);
    // Small reads: on io_uring the first of the standing receive's 4 KiB buffers is still held
    // after them, and the receive may still be live, when end_receive comes.
    for (int reads = 0; reads < 3;) {
      if (co_await in.readable(r.now_ms() + 5000) < 0) break;
      const long n = in.try_read(buffer.data(), 1000);
      if (n == -EAGAIN) continue;
      if (n <= 0 || !co_await write_all(to, buffer.data(), static_cast<size_t>(n))) break;
      copied += static_cast<uint64_t>(n);
      ++reads;
    }
    if (co_await in.end_receive() > 0) {
      long n;
      while ((n = in.try_read(buffer.data(), buffer.size())) > 0) {
        if (!co_await write_all(to, buffer.data(), static_cast<size_t>(n))) break;
        copied += static_cast<uint64_t>(n);
      }
    }
    out = co_await splice_relay(in, to, 5000);
    ::shutdown(out_fd, SHUT_WR);
    r.stop();
  }(*reactor, relay_in, relay_out, copied, result));
  reactor->run({});
  transfer.join();
  ::close(source);
  ::close(sink);
  EXPECT_TRUE(result.clean) << result.error;
  EXPECT_GE(copied, 3000u);
  EXPECT_GT(result.bytes, 0u);
  EXPECT_EQ(copied + result.bytes, kBytes);
  EXPECT_EQ(transfer.received, kBytes);
  EXPECT_EQ(transfer.mismatches, 0u);
}

// end_receive while io_uring's standing receive is live and holds part of a message: the op
// waits for the receive's end, the held bytes come first, then splice takes what came after.
TEST_P(RelayTest, EndReceiveWhileTheReceiveIsLiveHandsOverWhatItHeldInOrder) {
  auto [source, relay_in] = loopback_tcp_pair();
  auto [relay_out, sink] = loopback_tcp_pair();
  ::fcntl(relay_out, F_SETFL, O_NONBLOCK);
  std::string got;
  long held = -1;
  RelayResult result;
  spawn([](Reactor& r, int source, int in_fd, int out_fd, std::string& got, long& held,
           RelayResult& out) -> Task<void> {
    Socket in(r, in_fd), to(r, out_fd);
    const std::string first(3000, 'a'), second(5000, 'b');
    ::send(source, first.data(), first.size(), MSG_NOSIGNAL);
    char buffer[1000];
    long n = -EAGAIN;
    while (n == -EAGAIN) {
      if (co_await in.readable(r.now_ms() + 5000) < 0) break;
      n = in.try_read(buffer, sizeof buffer);
    }
    if (n > 0) got.append(buffer, static_cast<size_t>(n));
    held = co_await in.end_receive();
    ::send(source, second.data(), second.size(), MSG_NOSIGNAL);
    ::shutdown(source, SHUT_WR);
    if (held > 0) {
      while ((n = in.try_read(buffer, sizeof buffer)) > 0)
        got.append(buffer, static_cast<size_t>(n));
    }
    out = co_await splice_relay(in, to, 5000);
    ::shutdown(out_fd, SHUT_WR);
    r.stop();
  }(*reactor, source, relay_in, relay_out, got, held, result));
  reactor->run({});
  ::fcntl(sink, F_SETFL, 0);
  char block[4096];
  for (ssize_t n; (n = ::recv(sink, block, sizeof block, 0)) > 0;)
    got.append(block, static_cast<size_t>(n));
  ::close(source);
  ::close(sink);
  EXPECT_TRUE(result.clean) << result.error;
  // io_uring's receive had taken all 3000 bytes; epoll holds nothing, splice takes the rest.
  EXPECT_EQ(held, GetParam() == IoBackend::kIoUring ? 1 : 0);
  EXPECT_EQ(got, std::string(3000, 'a') + std::string(5000, 'b'));
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
