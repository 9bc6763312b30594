// Ending a WebSocket tunnel (the drain's end), on both event loops over loopback TCP: each side
// whose stream stopped between frames gets a Close frame (1001; masked to the backend) and then
// the end of the stream; a side left inside a frame gets no frame, only the end.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <utility>

#include "io_backends.h"
#include "loopback.h"
#include "net/buffer_pool.h"
#include "net/reactor.h"
#include "net/socket.h"
#include "net/task.h"
#include "proxy/l7/stream.h"

namespace usher::proxy::l7 {
namespace {

using net::Task;

// {peer (blocking, reads time out after 5 s), usher's end (non-blocking)}.
std::pair<int, int> tcp_pair() {
  auto pair = loopback_tcp_pair();
  timeval five{5, 0};
  ::setsockopt(pair.first, SOL_SOCKET, SO_RCVTIMEO, &five, sizeof five);
  return pair;
}

std::string read_exact(int fd, size_t n) {
  std::string out(n, '\0');
  size_t got = 0;
  while (got < n) {
    const ssize_t r = ::recv(fd, out.data() + got, n - got, 0);
    if (r <= 0) break;
    got += static_cast<size_t>(r);
  }
  out.resize(got);
  return out;
}

// Everything until the stream ends (or the 5 s receive timeout); then closes fd.
std::string read_to_end(int& fd) {
  std::string out;
  char buffer[4096];
  for (ssize_t n; (n = ::recv(fd, buffer, sizeof buffer, 0)) > 0;) out.append(buffer, n);
  ::close(std::exchange(fd, -1));
  return out;
}

void send_all(int fd, std::string_view bytes) {
  ASSERT_EQ(::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(bytes.size()));
}

// A client's masked text frame and a server's unmasked one, payload under 126 bytes.
std::string masked_frame(std::string_view payload) {
  std::string out = {'\x81', static_cast<char>(0x80 | payload.size()), 1, 2, 3, 4};
  for (size_t i = 0; i < payload.size(); ++i) out += static_cast<char>(payload[i] ^ (1 + i % 4));
  return out;
}
std::string frame(std::string_view payload) {
  return std::string{'\x81', static_cast<char>(payload.size())} + std::string(payload);
}

class TunnelEndTest : public ::testing::TestWithParam<net::IoBackend> {
 protected:
  void SetUp() override {
    std::string error;
    reactor = net::make_reactor(GetParam(), error);
    ASSERT_TRUE(reactor) << error;
    std::tie(client, client_end) = tcp_pair();
    std::tie(backend, backend_end) = tcp_pair();
  }
  void TearDown() override {
    if (client >= 0) ::close(client);
    if (backend >= 0) ::close(backend);
  }

  // Runs the tunnel on this thread while `peers` plays both ends; the tunnel is ended once
  // `go` is set. Returns how long the tunnel took from then to its end.
  uint64_t run(std::atomic<bool>& go, const std::function<void()>& peers) {
    std::atomic<uint64_t> asked{0}, ended{0};
    // Named: a coroutine reads its captures from its lambda, which must outlive it.
    auto relay = [&]() -> Task<void> {
      {
        net::Socket a(*reactor, client_end), b(*reactor, backend_end);
        TunnelControl control(*reactor, 0x01020304);
        auto end_when_asked = [&]() -> Task<void> {
          while (!go) co_await net::sleep_until(*reactor, reactor->now_ms() + 2);
          asked = reactor->now_ms();
          backend_written_to = control.toward[1].writing;
          control.end();
        };
        net::spawn(end_when_asked());
        co_await tunnel({a}, {b}, buffers, 60'000, &control);
        ended = reactor->now_ms();
      }
      reactor->stop();
    };
    std::thread peer_thread(peers);
    net::spawn(relay());
    std::thread guard([&] {
      for (int i = 0; i < 5000 && ended == 0; ++i) usleep(1000);
      reactor->stop();
    });
    reactor->run({});
    guard.join();
    peer_thread.join();
    EXPECT_NE(ended.load(), 0u) << "the tunnel did not end";
    return ended - asked;
  }

  std::unique_ptr<net::Reactor> reactor;
  net::BufferPool buffers{16 * 1024};
  int client = -1, client_end = -1, backend = -1, backend_end = -1;
  bool backend_written_to = false;  // when the end was asked
};

TEST_P(TunnelEndTest, BothSidesBetweenFramesGetACloseFrameThenTheEnd) {
  std::atomic<bool> go{false};
  std::string to_client, to_backend;
  const uint64_t took = run(go, [&] {
    send_all(client, masked_frame("hello"));
    EXPECT_EQ(read_exact(backend, 11), masked_frame("hello"));
    send_all(backend, frame("hello"));
    EXPECT_EQ(read_exact(client, 7), frame("hello"));
    go = true;
    to_client = read_to_end(client);
    to_backend = read_to_end(backend);
  });
  EXPECT_EQ(to_client, std::string_view("\x88\x02\x03\xE9", 4));
  // Masked with 01 02 03 04: 03 E9 becomes 02 EB.
  EXPECT_EQ(to_backend, std::string_view("\x88\x82\x01\x02\x03\x04\x02\xEB", 8));
  EXPECT_LT(took, 900u);  // both peers closed once they had the frame
}

TEST_P(TunnelEndTest, ASideLeftInsideAFrameGetsOnlyTheEnd) {
  std::atomic<bool> go{false};
  std::string to_client, to_backend;
  run(go, [&] {
    const std::string whole = masked_frame("a frame cut short");
    const std::string part = whole.substr(0, 9);
    send_all(client, part);
    EXPECT_EQ(read_exact(backend, part.size()), part);
    go = true;
    to_client = read_to_end(client);
    to_backend = read_to_end(backend);
  });
  EXPECT_EQ(to_client, std::string_view("\x88\x02\x03\xE9", 4));
  EXPECT_EQ(to_backend, "");
}

TEST_P(TunnelEndTest, AClosingHandshakeUnderWayGetsNoSecondCloseFrame) {
  std::atomic<bool> go{false};
  std::string to_client, to_backend;
  run(go, [&] {
    const std::string close = {'\x88', '\x80', 9, 9, 9, 9};
    send_all(client, close);
    EXPECT_EQ(read_exact(backend, close.size()), close);
    go = true;
    to_client = read_to_end(client);
    to_backend = read_to_end(backend);
  });
  EXPECT_EQ(to_client, std::string_view("\x88\x02\x03\xE9", 4));
  EXPECT_EQ(to_backend, "");  // only the end of the stream: its Close went already
}

// The end comes while the backend, reading nothing, holds up a write to it: that write finishes
// once the backend reads (a cancelled write could have sent part of its bytes unseen), and the
// backend then gets exactly what the client sent up to the end of that write, followed by a
// Close frame only if that is between two frames.
TEST_P(TunnelEndTest, AWriteUnderWayFinishesAndCountsBeforeTheEnd) {
  int small = 4096;
  ::setsockopt(backend_end, SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
  timeval five{5, 0};
  ::setsockopt(client, SOL_SOCKET, SO_SNDTIMEO, &five, sizeof five);
  // Frames of 4 KiB, header included: reads come in whole pages when bytes wait, so the end
  // most likely falls between two frames (and either way the backend's bytes are checked).
  // Binary, masked, 4088 bytes of payload.
  const std::string header = {'\x82', '\xFE', '\x0F', '\xF8', 1, 2, 3, 4};
  std::string stream;
  for (int i = 0; i < 160; ++i) stream += header + std::string(4088, 'w');
  const size_t frame_size = 4096;
  std::atomic<bool> go{false};
  std::string to_client, to_backend;
  run(go, [&] {
    std::thread sender([&] {
      for (size_t sent = 0; sent < stream.size();) {
        const ssize_t n = ::send(client, stream.data() + sent, stream.size() - sent, MSG_NOSIGNAL);
        if (n <= 0) break;
        sent += static_cast<size_t>(n);
      }
    });
    usleep(200'000);  // the relay fills what the backend's socket holds, and waits to write
    go = true;
    usleep(100'000);
    to_backend = read_to_end(backend);
    sender.join();
    to_client = read_to_end(client);
  });
  EXPECT_TRUE(backend_written_to);
  EXPECT_EQ(to_client, std::string_view("\x88\x02\x03\xE9", 4));
  const std::string_view close("\x88\x82\x01\x02\x03\x04\x02\xEB", 8);
  std::string_view relayed = to_backend;
  if (relayed.size() >= close.size() && relayed.substr(relayed.size() - close.size()) == close &&
      relayed.size() % frame_size == close.size()) {
    relayed.remove_suffix(close.size());
  } else {
    EXPECT_NE(relayed.size() % frame_size, 0u) << "between frames, yet no Close frame";
  }
  EXPECT_GT(relayed.size(), 0u);
  EXPECT_TRUE(std::string_view(stream).substr(0, relayed.size()) == relayed);
}

INSTANTIATE_TEST_SUITE_P(Backends, TunnelEndTest,
                         ::testing::Values(net::IoBackend::kEpoll, net::IoBackend::kIoUring),
                         io_backend_name);

}  // namespace
}  // namespace usher::proxy::l7
