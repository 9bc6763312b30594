// The same behaviour from both event-loop backends: completions, deadlines that leave the
// socket usable, cancellation, accept/connect and wake-ups from another thread.
#include "net/reactor.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <thread>

#include "net/socket.h"
#include "net/task.h"

namespace usher::net {
namespace {

class ReactorTest : public ::testing::TestWithParam<IoBackend> {
 protected:
  void SetUp() override {
    std::string error;
    reactor = make_reactor(GetParam(), error);
    ASSERT_TRUE(reactor) << error;
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds), 0);
  }
  void TearDown() override {
    if (fds[1] >= 0) ::close(fds[1]);
  }
  // Runs the loop until the test's coroutine stops it (or a 5 s guard does).
  void run(Task<void> body) {
    spawn(std::move(body));
    std::thread guard([this, deadline = monotonic_ms() + 5000] {
      while (!stopped.load() && monotonic_ms() < deadline) usleep(1000);
      reactor->stop();
    });
    reactor->run({});
    stopped = true;
    guard.join();
  }
  void finish() {
    stopped = true;
    reactor->stop();
  }
  std::unique_ptr<Reactor> reactor;
  int fds[2] = {-1, -1};
  std::atomic<bool> stopped{false};
};

TEST_P(ReactorTest, ReadCompletesWhenThePeerWrites) {
  long got = 0;
  std::string text;
  run([&]() -> Task<void> {
    Socket socket(*reactor, fds[0]);
    char buffer[16];
    std::thread writer([&] {
      usleep(20'000);
      [[maybe_unused]] ssize_t n = ::write(fds[1], "hello", 5);
    });
    got = co_await socket.read(buffer, sizeof buffer, 0);
    writer.join();
    text.assign(buffer, got > 0 ? static_cast<size_t>(got) : 0);
    finish();
  }());
  EXPECT_EQ(got, 5);
  EXPECT_EQ(text, "hello");
}

// A read that timed out must not have taken bytes that arrive afterwards.
TEST_P(ReactorTest, DeadlineLeavesTheSocketUsable) {
  long first = 0, second = 0;
  run([&]() -> Task<void> {
    Socket socket(*reactor, fds[0]);
    char buffer[16];
    first = co_await socket.read(buffer, sizeof buffer, reactor->now_ms() + 50);
    [[maybe_unused]] ssize_t n = ::write(fds[1], "abc", 3);
    second = co_await socket.read(buffer, sizeof buffer, reactor->now_ms() + 1000);
    finish();
  }());
  EXPECT_EQ(first, -ETIMEDOUT);
  EXPECT_EQ(second, 3);
}

TEST_P(ReactorTest, CancelCompletesAParkedReadWithECANCELED) {
  long result = 0;
  run([&]() -> Task<void> {
    Socket socket(*reactor, fds[0]);
    long slept = co_await sleep_until(*reactor, reactor->now_ms() + 1);
    (void)slept;
    Task<long> reader = [](Socket& s) -> Task<long> {
      char buffer[8];
      long n = co_await s.read(buffer, sizeof buffer, 0);
      co_return n;
    }(socket);
    reactor->cancel(socket);  // nothing parked yet: no effect
    // Cancel once the read is parked: from a sleep that ends after it started.
    spawn([](Reactor& r, Socket& s) -> Task<void> {
      long done = co_await sleep_until(r, r.now_ms() + 30);
      (void)done;
      r.cancel(s);
    }(*reactor, socket));
    result = co_await reader;
    finish();
  }());
  EXPECT_EQ(result, -ECANCELED);
}

TEST_P(ReactorTest, AcceptsAndConnectsOnLoopback) {
  long accepted = -1, connected = -1, echoed = -1;
  run([&]() -> Task<void> {
    int listen_fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(listen_fd, reinterpret_cast<sockaddr*>(&address), sizeof address);
    ::listen(listen_fd, 8);
    socklen_t length = sizeof address;
    ::getsockname(listen_fd, reinterpret_cast<sockaddr*>(&address), &length);
    Socket listener(*reactor, listen_fd);
    const Address to = Address::from_sockaddr(reinterpret_cast<sockaddr*>(&address), length);
    Socket client(*reactor, Socket::open_tcp(to));
    connected = co_await client.connect(to, reactor->now_ms() + 1000);
    accepted = co_await listener.accept(reactor->now_ms() + 1000);
    Socket server(*reactor, static_cast<int>(accepted));
    long sent = co_await client.write("ping", 4, 0);
    (void)sent;
    char buffer[8];
    echoed = co_await server.read(buffer, sizeof buffer, reactor->now_ms() + 1000);
    finish();
  }());
  EXPECT_EQ(connected, 0);
  EXPECT_GE(accepted, 0);
  EXPECT_EQ(echoed, 4);
}

TEST_P(ReactorTest, WakeFromAnotherThreadRunsTheHook) {
  std::atomic<int> wakes{0};
  std::thread other([&] {
    usleep(20'000);
    reactor->wake();
  });
  std::thread guard([&] {
    for (int i = 0; i < 500 && wakes.load() == 0; ++i) usleep(1000);
    reactor->stop();
  });
  reactor->run({.on_wake = [&] { wakes.fetch_add(1); }, .on_idle = {}});
  other.join();
  guard.join();
  EXPECT_GE(wakes.load(), 1);
}

INSTANTIATE_TEST_SUITE_P(Backends, ReactorTest,
                         ::testing::Values(IoBackend::kEpoll, IoBackend::kIoUring),
                         [](const auto& info) {
                           return std::string(info.param == IoBackend::kEpoll ? "epoll"
                                                                              : "io_uring");
                         });

}  // namespace
}  // namespace usher::net
