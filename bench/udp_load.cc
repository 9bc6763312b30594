// UDP load for bench/udp.sh, both ends of it, in batches so that it costs the shared core
// little next to the proxy under test:
//
//   udp_load echo PORT
//       an echo backend on 127.0.0.1:PORT: recvmmsg up to 64 datagrams, sendmmsg them back to
//       their senders, until killed;
//   udp_load send PORT SOCKETS WINDOW SECONDS MAX [SIZE] [WARMUP]
//       SOCKETS clients (a socket each, so a session each at a proxy) that keep WINDOW datagrams
//       of SIZE bytes (64) in flight to 127.0.0.1:PORT each, sending with sendmmsg and reading
//       replies with recvmmsg, for WARMUP (1) + SECONDS seconds or until MAX replies came after
//       the warm-up. A socket that gets no reply for 500 ms counts its datagrams in flight as
//       lost and sends afresh. Prints, for the time after the warm-up:
//       "replies=N seconds=S datagrams_per_second=R lost=L".
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace {

constexpr unsigned kBatch = 64;
constexpr size_t kMaxSize = 2048;
constexpr double kStallSeconds = 0.5;

double now_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

sockaddr_in loopback(int port) {
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons(static_cast<uint16_t>(port));
  return address;
}

// Room for kBatch datagrams and their senders.
struct Batch {
  Batch() {
    for (unsigned i = 0; i < kBatch; ++i) {
      iov[i] = {data[i].data(), kMaxSize};
      messages[i].msg_hdr.msg_iov = &iov[i];
      messages[i].msg_hdr.msg_iovlen = 1;
      messages[i].msg_hdr.msg_name = &from[i];
    }
  }
  void reset() {
    for (unsigned i = 0; i < kBatch; ++i) {
      messages[i].msg_hdr.msg_namelen = sizeof from[i];
      iov[i].iov_len = kMaxSize;
    }
  }
  std::array<mmsghdr, kBatch> messages{};
  std::array<iovec, kBatch> iov{};
  std::array<sockaddr_in, kBatch> from{};
  std::array<std::array<char, kMaxSize>, kBatch> data{};
};

int echo(int port) {
  const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  const sockaddr_in at = loopback(port);
  int size = 4 << 20;
  ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&at), sizeof at) < 0) {
    std::perror("bind");
    return 1;
  }
  Batch batch;
  while (true) {
    batch.reset();
    const int n = ::recvmmsg(fd, batch.messages.data(), kBatch, MSG_WAITFORONE, nullptr);
    if (n < 0) continue;
    for (int i = 0; i < n; ++i) batch.iov[i].iov_len = batch.messages[i].msg_len;
    for (int sent = 0; sent < n;) {
      const int k = ::sendmmsg(fd, batch.messages.data() + sent, n - sent, 0);
      if (k <= 0) break;
      sent += k;
    }
  }
}

struct Client {
  int fd = -1;
  unsigned in_flight = 0;
  double last_progress = 0;
};

// Sends as many datagrams as the window has room for.
void fill(Client& c, unsigned window, Batch& out) {
  const unsigned room = window - c.in_flight;
  if (room == 0) return;
  const int sent = ::sendmmsg(c.fd, out.messages.data(), room, MSG_DONTWAIT);
  if (sent > 0) c.in_flight += static_cast<unsigned>(sent);
}

int send_load(int port, unsigned sockets, unsigned window, double seconds, uint64_t max,
              size_t size, double warmup) {
  if (window == 0 || window > kBatch || size == 0 || size > kMaxSize) {
    std::fprintf(stderr, "udp_load: WINDOW must be 1-%u and SIZE 1-%zu\n", kBatch, kMaxSize);
    return 2;
  }
  const int epoll = ::epoll_create1(EPOLL_CLOEXEC);
  const sockaddr_in to = loopback(port);
  std::vector<Client> clients(sockets);
  Batch out, in;
  for (unsigned i = 0; i < kBatch; ++i) {
    out.iov[i].iov_len = size;
    out.messages[i].msg_hdr.msg_name = nullptr;
    std::memset(out.data[i].data(), 'x', size);
  }
  const double started = now_seconds();
  for (unsigned i = 0; i < sockets; ++i) {
    Client& c = clients[i];
    c.fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    ::connect(c.fd, reinterpret_cast<const sockaddr*>(&to), sizeof to);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u32 = i;
    ::epoll_ctl(epoll, EPOLL_CTL_ADD, c.fd, &ev);
    c.last_progress = started;
    fill(c, window, out);
  }
  uint64_t replies = 0, counted_from = 0, lost = 0;
  bool warm = false;
  double measured_from = started;
  std::vector<epoll_event> events(sockets);
  while (true) {
    const double now = now_seconds();
    if (!warm && now - started >= warmup) {
      warm = true;
      counted_from = replies;
      measured_from = now;
    }
    if (warm && (now - measured_from >= seconds || replies - counted_from >= max)) break;
    const int n = ::epoll_wait(epoll, events.data(), static_cast<int>(sockets), 50);
    for (int e = 0; e < n; ++e) {
      Client& c = clients[events[e].data.u32];
      in.reset();
      const int got = ::recvmmsg(c.fd, in.messages.data(), kBatch, MSG_DONTWAIT, nullptr);
      if (got <= 0) continue;
      replies += static_cast<uint64_t>(got);
      c.in_flight -= std::min(c.in_flight, static_cast<unsigned>(got));
      c.last_progress = now;
      fill(c, window, out);
    }
    for (Client& c : clients) {
      if (c.in_flight > 0 && now - c.last_progress > kStallSeconds) {
        lost += c.in_flight;
        c.in_flight = 0;
        c.last_progress = now;
        fill(c, window, out);
      }
    }
  }
  const double elapsed = now_seconds() - measured_from;
  const uint64_t counted = replies - counted_from;
  std::printf("replies=%llu seconds=%.3f datagrams_per_second=%.0f lost=%llu\n",
              static_cast<unsigned long long>(counted), elapsed,
              static_cast<double>(counted) / elapsed, static_cast<unsigned long long>(lost));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 3 && std::strcmp(argv[1], "echo") == 0) return echo(std::atoi(argv[2]));
  if (argc >= 7 && std::strcmp(argv[1], "send") == 0) {
    return send_load(std::atoi(argv[2]), static_cast<unsigned>(std::atoi(argv[3])),
                     static_cast<unsigned>(std::atoi(argv[4])), std::atof(argv[5]),
                     std::strtoull(argv[6], nullptr, 10),
                     argc > 7 ? static_cast<size_t>(std::atoi(argv[7])) : 64,
                     argc > 8 ? std::atof(argv[8]) : 1.0);
  }
  std::fprintf(stderr,
               "usage: udp_load echo PORT\n"
               "       udp_load send PORT SOCKETS WINDOW SECONDS MAX [SIZE] [WARMUP]\n");
  return 2;
}
