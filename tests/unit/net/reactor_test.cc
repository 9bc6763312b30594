// The same behaviour from both event-loop backends: completions, deadlines that leave the
// socket usable, cancellation, accept/connect and wake-ups from another thread.
#include "net/reactor.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "net/socket.h"
#include "net/task.h"

namespace usher::net {
namespace {

// A non-blocking listener on 127.0.0.1 with an ephemeral port, whose address lands in `address`.
int listen_on_loopback(sockaddr_in& address, int backlog) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  address = {};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address);
  ::listen(fd, backlog);
  socklen_t length = sizeof address;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  return fd;
}

// A non-blocking udp socket on 127.0.0.1 with an ephemeral port, whose address lands in
// `address`.
int udp_on_loopback(sockaddr_in& address) {
  int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  address = {};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address);
  socklen_t length = sizeof address;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  return fd;
}

// Room for up to 8 datagrams of up to 16 bytes, and their senders, for Socket::receive_batch.
struct Datagrams {
  static constexpr unsigned kCount = 8;
  Datagrams() {
    for (unsigned i = 0; i < kCount; ++i) {
      iov[i] = {data[i], sizeof data[i]};
      messages[i].msg_hdr.msg_iov = &iov[i];
      messages[i].msg_hdr.msg_iovlen = 1;
      messages[i].msg_hdr.msg_name = &from[i];
      messages[i].msg_hdr.msg_namelen = sizeof from[i];
    }
  }
  std::array<mmsghdr, kCount> messages{};
  std::array<iovec, kCount> iov{};
  std::array<sockaddr_in, kCount> from{};
  char data[kCount][16] = {};
};

// epoll runs twice: with its writes batched through AIO, and one syscall each (its fallback).
enum class Loop { kEpoll, kEpollOneByOne, kIoUring };

std::unique_ptr<Reactor> make_loop(Loop loop, std::string& error) {
  switch (loop) {
    case Loop::kEpoll:
      return make_epoll_reactor(EpollWrites::kBatched);
    case Loop::kEpollOneByOne:
      return make_epoll_reactor(EpollWrites::kOneByOne);
    case Loop::kIoUring:
      return make_reactor(IoBackend::kIoUring, error);
  }
  return nullptr;
}

class ReactorTest : public ::testing::TestWithParam<Loop> {
 protected:
  void SetUp() override {
    std::string error;
    reactor = make_loop(GetParam(), error);
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

// A write can still be waiting for its turn to end (epoll sends them together then) or for the
// kernel (io_uring) when its socket is cancelled: it completes once, with -ECANCELED, and the
// socket stays usable.
TEST_P(ReactorTest, CancelInTheTurnOfAWriteCompletesIt) {
  long cancelled = 0, next = 0;
  run([&]() -> Task<void> {
    Socket socket(*reactor, fds[0]);
    auto write_hello = [](Socket& s, long& result) -> Task<void> {
      result = co_await s.write("hello", 5, 0);
    };
    spawn(write_hello(socket, cancelled));
    reactor->cancel(socket);
    long slept = co_await sleep_until(*reactor, reactor->now_ms() + 20);
    (void)slept;
    next = co_await socket.write("world", 5, 0);
    finish();
  }());
  EXPECT_EQ(cancelled, -ECANCELED);
  EXPECT_EQ(next, 5);
  char buffer[16];
  ssize_t n = ::read(fds[1], buffer, sizeof buffer);
  ASSERT_GE(n, 5);
  EXPECT_EQ(std::string(buffer + n - 5, 5), "world");
}

TEST_P(ReactorTest, AcceptsAndConnectsOnLoopback) {
  long accepted = -1, connected = -1, echoed = -1;
  run([&]() -> Task<void> {
    sockaddr_in address{};
    Socket listener(*reactor, listen_on_loopback(address, 8));
    const Address to =
        Address::from_sockaddr(reinterpret_cast<sockaddr*>(&address), sizeof address);
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
  reactor->run({.on_wake = [&] { wakes.fetch_add(1); },
                .on_idle = {},
                .idle_work_waiting = {},
                .on_turn_end = {}});
  other.join();
  guard.join();
  EXPECT_GE(wakes.load(), 1);
}

// With nothing to wait for the loop sleeps a second at a time; while on_idle has work waiting
// (a worker's buffered access-log lines) it wakes within kIdleWorkWaitMs for it. Three idle
// turns therefore take about 300 ms, where a second's waits would take three.
TEST_P(ReactorTest, IdleWorkWaitingShortensTheIdleWait) {
  std::atomic<int> idles{0};
  const uint64_t started = monotonic_ms();
  std::thread guard([&] {
    for (int i = 0; i < 5000 && idles < 3; ++i) usleep(1000);
    reactor->stop();
  });
  reactor->run({.on_wake = {},
                .on_idle =
                    [&] {
                      if (++idles == 3) reactor->stop();
                    },
                .idle_work_waiting = [] { return true; },
                .on_turn_end = {}});
  guard.join();
  EXPECT_EQ(idles, 3);
  EXPECT_LT(monotonic_ms() - started, 2000u);
}

// A cancel from the wake hook (a worker closing its idle connections at the drain) completes the
// read at once, though no event and no deadline would end the loop's wait.
TEST_P(ReactorTest, CancelFromTheWakeHookResumesAtOnce) {
  Socket socket(*reactor, fds[0]);
  uint64_t cancelled_ms = 0;
  std::atomic<uint64_t> resumed_ms{0};
  long result = 0;
  auto read_forever = [&]() -> Task<void> {
    char buffer[8];
    result = co_await socket.read(buffer, sizeof buffer, 0);
    resumed_ms = monotonic_ms();
    reactor->stop();
  };
  spawn(read_forever());
  std::thread other([&] {
    usleep(20'000);
    reactor->wake();
  });
  std::thread guard([&] {
    for (int i = 0; i < 5000 && resumed_ms == 0; ++i) usleep(1000);
    reactor->stop();
  });
  reactor->run({.on_wake =
                    [&] {
                      cancelled_ms = monotonic_ms();
                      reactor->cancel(socket);
                    },
                .on_idle = {},
                .idle_work_waiting = {},
                .on_turn_end = {}});
  other.join();
  guard.join();
  EXPECT_EQ(result, -ECANCELED);
  ASSERT_NE(resumed_ms.load(), 0u);
  EXPECT_LT(resumed_ms - cancelled_ms, 200u);
}

// Bytes that arrive while nobody reads wait for the reader, in order, whatever the read size;
// the peer's close comes after them.
TEST_P(ReactorTest, ReadsInSmallPiecesWhatArrivedUnreadThenTheEnd) {
  constexpr size_t kTotal = 1 << 20;
  std::string sent(kTotal, '\0');
  for (size_t i = 0; i < kTotal; ++i) sent[i] = static_cast<char>('a' + (i * 7 + i / 4093) % 26);
  std::string received;
  long last = -1;
  std::thread writer([&] {
    for (size_t done = 0; done < kTotal;) {
      ssize_t n = ::write(fds[1], sent.data() + done, std::min<size_t>(kTotal - done, 65536));
      if (n > 0) done += static_cast<size_t>(n);
      if (n < 0) usleep(1000);
    }
    ::shutdown(fds[1], SHUT_WR);
  });
  run([&]() -> Task<void> {
    Socket socket(*reactor, fds[0]);
    char buffer[1000];
    for (int turn = 0;; ++turn) {
      long n = co_await socket.read(buffer, sizeof buffer, reactor->now_ms() + 2000);
      if (n <= 0) {
        last = n;
        break;
      }
      received.append(buffer, static_cast<size_t>(n));
      // Now and then let bytes pile up unread.
      if (turn % 64 == 0) {
        long slept = co_await sleep_until(*reactor, reactor->now_ms() + 2);
        (void)slept;
      }
    }
    finish();
  }());
  writer.join();
  EXPECT_EQ(last, 0);
  ASSERT_EQ(received.size(), kTotal);
  EXPECT_TRUE(received == sent);
}

// Hundreds of sockets sitting on unread bytes must not keep another socket from reading: on
// io_uring they would hold the whole receive ring (5 buffers each), so they leave it a reserve
// and the other socket's read finds a buffer.
TEST_P(ReactorTest, UnreadBytesOnManySocketsDoNotStarveAnother) {
  constexpr int kPairs = 300;
  constexpr size_t kEach = 20000;
  std::atomic<uint64_t> shortages{0};
  reactor->count_buffer_shortages_into(&shortages);
  std::vector<std::array<int, 2>> pairs(kPairs);
  for (auto& pair : pairs) {
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, pair.data()), 0);
  }
  auto pattern = [](int pair, size_t i) { return static_cast<char>('A' + (pair + i) % 26); };
  long fresh = -1;
  int exact = 0;
  run([&]() -> Task<void> {
    std::vector<std::unique_ptr<Socket>> sockets;
    for (int p = 0; p < kPairs; ++p) {
      std::string bytes(kEach, '\0');
      for (size_t i = 0; i < kEach; ++i) bytes[i] = pattern(p, i);
      [[maybe_unused]] ssize_t n = ::write(pairs[p][1], bytes.data(), bytes.size());
      sockets.push_back(std::make_unique<Socket>(*reactor, pairs[p][0]));
      long ready = co_await sockets.back()->readable(reactor->now_ms() + 1000);
      (void)ready;
    }
    [[maybe_unused]] ssize_t n = ::write(fds[1], "fresh", 5);
    Socket other(*reactor, fds[0]);
    char small[16];
    fresh = co_await other.read(small, sizeof small, reactor->now_ms() + 1000);
    for (int p = 0; p < kPairs; ++p) {
      std::string got;
      char buffer[4096];
      while (got.size() < kEach) {
        long r = co_await sockets[p]->read(buffer, sizeof buffer, reactor->now_ms() + 1000);
        if (r <= 0) break;
        got.append(buffer, static_cast<size_t>(r));
      }
      bool same = got.size() == kEach;
      for (size_t i = 0; same && i < kEach; ++i) same = got[i] == pattern(p, i);
      exact += same ? 1 : 0;
    }
    finish();
  }());
  for (auto& pair : pairs) ::close(pair[1]);
  EXPECT_EQ(fresh, 5);
  EXPECT_EQ(exact, kPairs);
  EXPECT_EQ(shortages.load(), 0u);
}

// A readiness wait receives nothing: the datagrams stay for the reader's own recvmmsg, each with
// its sender's address; once the reader has emptied the socket, the next wait waits for a new
// one, and a cancel ends it.
TEST_P(ReactorTest, WaitReadableLeavesTheDatagramsToTheReader) {
  sockaddr_in at{}, sender_at{};
  const int receiver = udp_on_loopback(at);
  const int sender = udp_on_loopback(sender_at);
  auto send = [&](const char* text) {
    ::sendto(sender, text, std::strlen(text), 0, reinterpret_cast<sockaddr*>(&at), sizeof at);
  };
  long empty = 0, idle = 0, ready = 0, drained = 0, again = 0, cancelled = 0;
  int first = 0, emptied = 0, second = 0;
  Datagrams got;
  run([&]() -> Task<void> {
    Socket socket(*reactor, receiver);
    empty = socket.receive_batch(got.messages.data(), Datagrams::kCount);
    idle = co_await socket.wait_readable(reactor->now_ms() + 30);
    std::thread writer([&] {
      usleep(20'000);
      for (const char* text : {"one", "two", "three"}) send(text);
    });
    ready = co_await socket.wait_readable(reactor->now_ms() + 1000);
    writer.join();
    first = socket.receive_batch(got.messages.data(), Datagrams::kCount);
    emptied = socket.receive_batch(got.messages.data() + 3, Datagrams::kCount - 3);
    drained = co_await socket.wait_readable(reactor->now_ms() + 30);
    send("four");
    again = co_await socket.wait_readable(reactor->now_ms() + 1000);
    second = socket.receive_batch(got.messages.data() + 3, 2);
    spawn([](Reactor& r, Socket& s) -> Task<void> {
      long slept = co_await sleep_until(r, r.now_ms() + 20);
      (void)slept;
      r.cancel(s);
    }(*reactor, socket));
    cancelled = co_await socket.wait_readable(0);
    finish();
  }());
  ::close(sender);
  EXPECT_EQ(empty, -EAGAIN);
  EXPECT_EQ(idle, -ETIMEDOUT);
  EXPECT_EQ(ready, 0);
  ASSERT_EQ(first, 3);
  EXPECT_EQ(emptied, -EAGAIN);
  EXPECT_EQ(drained, -ETIMEDOUT);
  EXPECT_EQ(again, 0);
  EXPECT_EQ(second, 1);
  EXPECT_EQ(cancelled, -ECANCELED);
  const char* expected[] = {"one", "two", "three", "four"};
  for (unsigned i = 0; i < 4; ++i) {
    EXPECT_EQ(std::string(got.data[i], got.messages[i].msg_len), expected[i]);
    EXPECT_EQ(got.from[i].sin_port, sender_at.sin_port);
    EXPECT_EQ(got.from[i].sin_addr.s_addr, sender_at.sin_addr.s_addr);
  }
}

// Datagrams sent together: on a connected socket and with an address, each one whole, each
// with its own result; one to a port nobody listens on fails alone.
TEST_P(ReactorTest, SendDatagramsSendsEachWithItsResult) {
  sockaddr_in at{}, from_at{}, closed_at{};
  const int receiver = udp_on_loopback(at);
  const int connected = udp_on_loopback(from_at);
  const int unconnected = udp_on_loopback(from_at);
  const int closed = udp_on_loopback(closed_at);
  ::close(closed);
  ::connect(connected, reinterpret_cast<sockaddr*>(&at), sizeof at);
  const int refused = udp_on_loopback(from_at);
  ::connect(refused, reinterpret_cast<sockaddr*>(&closed_at), sizeof closed_at);
  char one[] = "one", two[] = "two", three[] = "three";
  iovec iov[] = {{one, 3}, {two, 3}, {three, 5}, {one, 3}};
  std::array<Datagram, 4> datagrams{};
  for (size_t i = 0; i < datagrams.size(); ++i) {
    datagrams[i].fd = i == 2 ? unconnected : connected;
    datagrams[i].message.msg_iov = &iov[i];
    datagrams[i].message.msg_iovlen = 1;
  }
  datagrams[2].message.msg_name = &at;
  datagrams[2].message.msg_namelen = sizeof at;
  std::array<Datagram, 1> refused_one{};
  refused_one[0].fd = refused;
  refused_one[0].message.msg_iov = &iov[0];
  refused_one[0].message.msg_iovlen = 1;
  int got = 0;
  Datagrams in;
  long refused_result = 0;
  run([&]() -> Task<void> {
    long started = co_await sleep_until(*reactor, reactor->now_ms() + 1);  // the loop runs
    (void)started;
    reactor->send_datagrams(datagrams);
    // The first send draws the ICMP port unreachable, the second reports it.
    reactor->send_datagrams(refused_one);
    long slept = co_await sleep_until(*reactor, reactor->now_ms() + 20);
    (void)slept;
    reactor->send_datagrams(refused_one);
    refused_result = refused_one[0].result;
    Socket socket(*reactor, receiver);
    got = socket.receive_batch(in.messages.data(), Datagrams::kCount);
    finish();
  }());
  for (int fd : {connected, unconnected, refused}) ::close(fd);
  EXPECT_EQ(datagrams[0].result, 3);
  EXPECT_EQ(datagrams[1].result, 3);
  EXPECT_EQ(datagrams[2].result, 5);
  EXPECT_EQ(datagrams[3].result, 3);
  EXPECT_EQ(refused_result, -ECONNREFUSED);
  ASSERT_EQ(got, 4);
  std::vector<std::string> texts;
  for (int i = 0; i < got; ++i) texts.emplace_back(in.data[i], in.messages[i].msg_len);
  std::sort(texts.begin(), texts.end());
  EXPECT_EQ(texts, (std::vector<std::string>{"one", "one", "three", "two"}));
}

// An idle connection learns that its peer closed without reading from it.
TEST_P(ReactorTest, PeerClosedSeenOnAnIdleSocket) {
  bool before = true, after = false;
  run([&]() -> Task<void> {
    Socket socket(*reactor, fds[0]);
    [[maybe_unused]] ssize_t n = ::write(fds[1], "x", 1);
    char buffer[4];
    long got = co_await socket.read(buffer, sizeof buffer, reactor->now_ms() + 1000);
    (void)got;
    before = reactor->peer_closed(socket);
    ::close(std::exchange(fds[1], -1));
    long slept = co_await sleep_until(*reactor, reactor->now_ms() + 50);
    (void)slept;
    after = reactor->peer_closed(socket);
    finish();
  }());
  EXPECT_FALSE(before);
  EXPECT_TRUE(after);
}

// A burst of connections: each accepted exactly once, and those nobody accepted are closed with
// the listener.
TEST_P(ReactorTest, AcceptsEveryConnectionOfABurst) {
  constexpr int kClients = 100;
  int accepted = 0, distinct = 0;
  std::vector<int> clients;
  run([&]() -> Task<void> {
    sockaddr_in address{};
    auto listener = std::make_unique<Socket>(*reactor, listen_on_loopback(address, 256));
    for (int i = 0; i < kClients + 5; ++i) {
      int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      ::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address);
      clients.push_back(fd);
    }
    std::vector<int> fds;
    for (int i = 0; i < kClients; ++i) {
      long fd = co_await listener->accept(reactor->now_ms() + 1000);
      if (fd < 0) break;
      fds.push_back(static_cast<int>(fd));
    }
    accepted = static_cast<int>(fds.size());
    std::sort(fds.begin(), fds.end());
    distinct = static_cast<int>(std::unique(fds.begin(), fds.end()) - fds.begin());
    for (int fd : fds) ::close(fd);
    listener.reset();
    finish();
  }());
  EXPECT_EQ(accepted, kClients);
  EXPECT_EQ(distinct, kClients);
  // Every client sees its connection closed: by the test, or with the listener.
  int closed = 0;
  for (int fd : clients) {
    timeval wait{.tv_sec = 1, .tv_usec = 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &wait, sizeof wait);
    char byte;
    ssize_t n = ::recv(fd, &byte, 1, 0);
    if (n == 0 || (n < 0 && errno != EAGAIN)) ++closed;
    ::close(fd);
  }
  EXPECT_EQ(closed, kClients + 5);
}

INSTANTIATE_TEST_SUITE_P(Backends, ReactorTest,
                         ::testing::Values(Loop::kEpoll, Loop::kEpollOneByOne, Loop::kIoUring),
                         [](const auto& info) -> std::string {
                           switch (info.param) {
                             case Loop::kEpoll:
                               return "epoll";
                             case Loop::kEpollOneByOne:
                               return "epoll_one_by_one";
                             case Loop::kIoUring:
                               return "io_uring";
                           }
                           return "";
                         });

}  // namespace
}  // namespace usher::net
