// Bulk TCP for bench/tcp.sh: a sink and a source to put behind a proxy, and the clients that
// stream zeros through it, all single-threaded epoll loops. Zeros go out with sendfile(2) from a
// 1 MiB memfd and are read with recv(MSG_TRUNC), which discards them in the kernel: the load
// side copies nothing, so what the core spends beyond the direct run is the proxy's doing.
//
//   tcp_stream sink PORT                 each connection: read until EOF, answer "BYTES\n", close
//   tcp_stream source PORT               each connection: after its first byte, write zeros until
//                                        the peer goes
//   tcp_stream up PORT CONNS SECONDS     CONNS connections to a sink: write for SECONDS,
//                                        half-close, wait for every count (checked against what
//                                        was written)
//   tcp_stream down PORT CONNS SECONDS   CONNS connections to a source: a byte each, then read for
//                                        SECONDS and close
//
// The clients print "BYTES SECONDS FAIRNESS EMPTY LAST_FIRST" (report() below; BYTES: what the
// far end counted or the client read; SECONDS: from the moment all connections are up to the last
// count, or to the end of reading) and exit 1 on any failure, when nothing at all came down, or
// when the counts have not all come 30 s after writing stopped.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

constexpr off_t kFileBytes = 1 << 20;
constexpr size_t kChunk = 256 << 10;
constexpr double kDrainSeconds = 30;

[[noreturn]] void die(const char* what) {
  std::fprintf(stderr, "tcp_stream: %s: %s\n", what, std::strerror(errno));
  std::exit(1);
}

double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

sockaddr_in loopback(int port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return a;
}

int zeros_file() {
  const int fd = memfd_create("zeros", MFD_CLOEXEC);
  if (fd < 0 || ftruncate(fd, kFileBytes) != 0) die("memfd");
  std::vector<char> zeros(kFileBytes);  // real pages, not holes
  if (pwrite(fd, zeros.data(), zeros.size(), 0) != kFileBytes) die("memfd write");
  return fd;
}

// One sendfile of up to kChunk zeros; *offset wraps around the file. Bytes sent or -errno.
long send_zeros(int sock, int file, off_t* offset) {
  if (*offset >= kFileBytes) *offset = 0;
  const size_t length = std::min<size_t>(kChunk, static_cast<size_t>(kFileBytes - *offset));
  const ssize_t n = sendfile(sock, file, offset, length);
  return n < 0 ? -errno : n;
}

// Reads and discards what is queued; bytes read (0 at EOF) or -errno.
long discard(int sock) {
  const ssize_t n = recv(sock, nullptr, 1 << 30, MSG_TRUNC | MSG_DONTWAIT);
  return n < 0 ? -errno : n;
}

void add(int ep, int fd, uint32_t events) {
  epoll_event e{};
  e.events = events;
  e.data.fd = fd;
  if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e) != 0) die("epoll_ctl add");
}

void modify(int ep, int fd, uint32_t events) {
  epoll_event e{};
  e.events = events;
  e.data.fd = fd;
  if (epoll_ctl(ep, EPOLL_CTL_MOD, fd, &e) != 0) die("epoll_ctl mod");
}

// sink and source: one loop serving every connection.
[[noreturn]] void serve(int port, bool source) {
  const int listener = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  const int one = 1;
  setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  const sockaddr_in a = loopback(port);
  if (bind(listener, reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0) die("bind");
  if (listen(listener, 4096) != 0) die("listen");
  const int file = source ? zeros_file() : -1;
  const int ep = epoll_create1(EPOLL_CLOEXEC);
  add(ep, listener, EPOLLIN);
  struct Peer {
    uint64_t bytes = 0;
    off_t offset = 0;
    bool streaming = false;
  };
  std::vector<Peer> peers;
  epoll_event events[256];
  while (true) {
    const int n = epoll_wait(ep, events, 256, -1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) die("epoll_wait");
    for (int i = 0; i < n; ++i) {
      const int fd = events[i].data.fd;
      if (fd == listener) {
        int c;
        while ((c = accept4(listener, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
          if (static_cast<size_t>(c) >= peers.size()) peers.resize(c + 1);
          peers[c] = {};
          add(ep, c, EPOLLIN);
        }
        continue;
      }
      Peer& p = peers[fd];
      bool done = false;
      if (!p.streaming) {
        // sink: count until EOF; source: wait for the first byte.
        while (true) {
          const long got = discard(fd);
          if (got == -EAGAIN) break;
          if (got <= 0) {
            if (got == 0 && !source) {
              const std::string count = std::to_string(p.bytes) + "\n";
              (void)!send(fd, count.data(), count.size(), MSG_NOSIGNAL);
            }
            done = true;
            break;
          }
          p.bytes += static_cast<uint64_t>(got);
          if (source) {
            p.streaming = true;
            modify(ep, fd, EPOLLOUT);
            break;
          }
        }
      }
      if (!done && p.streaming) {
        while (true) {
          const long sent = send_zeros(fd, file, &p.offset);
          if (sent == -EAGAIN) break;
          if (sent <= 0) {  // the client went
            done = true;
            break;
          }
        }
      }
      if (done) close(fd);  // closing removes it from the epoll set
    }
  }
}

struct Conn {
  int fd = -1;
  uint64_t written = 0;  // up: bytes written; down: bytes read
  off_t offset = 0;
  std::string reply;
  bool counted = false;
  double first = 0;  // down: seconds from the start to the first byte
};

uint64_t total_of(const std::vector<Conn>& cs) {
  uint64_t total = 0;
  for (const Conn& c : cs) total += c.written;
  return total;
}

// Prints "BYTES SECONDS FAIRNESS EMPTY LAST_FIRST": FAIRNESS is Jain's index of the bytes per
// connection (1 when all moved as much, 1/CONNS when one moved everything), EMPTY the
// connections that moved nothing, LAST_FIRST (down only, else -1) the seconds until the last
// connection's first byte.
void report(const std::vector<Conn>& cs, double seconds, bool down) {
  double sum = 0, squares = 0, last_first = down ? 0 : -1;
  int empty = 0;
  for (const Conn& c : cs) {
    const auto x = static_cast<double>(c.written);
    sum += x;
    squares += x * x;
    if (c.written == 0) ++empty;
    if (down) last_first = std::max(last_first, c.written ? c.first : seconds);
  }
  const double fairness = squares > 0 ? sum * sum / (static_cast<double>(cs.size()) * squares) : 0;
  std::printf("%llu %.4f %.3f %d %.3f\n", static_cast<unsigned long long>(total_of(cs)), seconds,
              fairness, empty, last_first);
}

std::vector<Conn> connect_all(int port, int conns) {
  std::vector<Conn> out(static_cast<size_t>(conns));
  const sockaddr_in a = loopback(port);
  for (Conn& c : out) {
    c.fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (connect(c.fd, reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0) die("connect");
    fcntl(c.fd, F_SETFL, fcntl(c.fd, F_GETFL) | O_NONBLOCK);
  }
  return out;
}

int run_up(int port, int conns, double seconds) {
  std::vector<Conn> cs = connect_all(port, conns);
  const int file = zeros_file();
  const int ep = epoll_create1(EPOLL_CLOEXEC);
  for (size_t i = 0; i < cs.size(); ++i) {
    epoll_event e{};
    e.events = EPOLLOUT;
    e.data.u64 = i;
    if (epoll_ctl(ep, EPOLL_CTL_ADD, cs[i].fd, &e) != 0) die("epoll_ctl");
  }
  const double start = now(), stop = start + seconds;
  epoll_event events[256];
  double t = start;
  while ((t = now()) < stop) {
    const int n = epoll_wait(ep, events, 256, static_cast<int>((stop - t) * 1000) + 1);
    if (n < 0 && errno != EINTR) die("epoll_wait");
    for (int i = 0; i < n; ++i) {
      Conn& c = cs[events[i].data.u64];
      const long sent = send_zeros(c.fd, file, &c.offset);
      if (sent == -EAGAIN) continue;
      if (sent <= 0) {
        errno = static_cast<int>(-sent);
        die("send");
      }
      c.written += static_cast<uint64_t>(sent);
    }
  }
  // Half-close and collect the counts.
  for (size_t i = 0; i < cs.size(); ++i) {
    if (shutdown(cs[i].fd, SHUT_WR) != 0) die("shutdown");
    epoll_event e{};
    e.events = EPOLLIN;
    e.data.u64 = i;
    if (epoll_ctl(ep, EPOLL_CTL_MOD, cs[i].fd, &e) != 0) die("epoll_ctl");
  }
  size_t left = cs.size();
  double last = now();
  const double give_up = last + kDrainSeconds;
  while (left > 0) {
    if ((t = now()) > give_up) {
      std::fprintf(stderr, "tcp_stream: %zu of %d counts missing after %.0f s\n", left, conns,
                   kDrainSeconds);
      return 1;
    }
    const int n = epoll_wait(ep, events, 256, 1000);
    if (n < 0 && errno != EINTR) die("epoll_wait");
    for (int i = 0; i < n; ++i) {
      Conn& c = cs[events[i].data.u64];
      char buffer[64];
      const ssize_t got = recv(c.fd, buffer, sizeof buffer, MSG_DONTWAIT);
      if (got < 0 && errno == EAGAIN) continue;
      if (got < 0) die("recv count");
      if (got > 0) {
        c.reply.append(buffer, static_cast<size_t>(got));
        continue;
      }
      // EOF: the count is complete.
      if (c.counted) continue;
      c.counted = true;
      epoll_ctl(ep, EPOLL_CTL_DEL, c.fd, nullptr);
      --left;
      last = now();
      const uint64_t count = std::strtoull(c.reply.c_str(), nullptr, 10);
      if (c.reply.empty() || count != c.written) {
        std::fprintf(stderr, "tcp_stream: the sink counted %s bytes, %llu were written\n",
                     c.reply.empty() ? "no" : c.reply.c_str(),
                     static_cast<unsigned long long>(c.written));
        return 1;
      }
    }
  }
  report(cs, last - start, false);
  return 0;
}

int run_down(int port, int conns, double seconds) {
  std::vector<Conn> cs = connect_all(port, conns);
  const int ep = epoll_create1(EPOLL_CLOEXEC);
  for (size_t i = 0; i < cs.size(); ++i) {
    epoll_event e{};
    e.events = EPOLLIN;
    e.data.u64 = i;
    if (epoll_ctl(ep, EPOLL_CTL_ADD, cs[i].fd, &e) != 0) die("epoll_ctl");
  }
  const double start = now(), stop = start + seconds;
  for (Conn& c : cs) {
    if (send(c.fd, "g", 1, MSG_NOSIGNAL) != 1) die("send go");
  }
  epoll_event events[256];
  double t = start;
  while ((t = now()) < stop) {
    const int n = epoll_wait(ep, events, 256, static_cast<int>((stop - t) * 1000) + 1);
    if (n < 0 && errno != EINTR) die("epoll_wait");
    for (int i = 0; i < n; ++i) {
      Conn& c = cs[events[i].data.u64];
      const long got = discard(c.fd);
      if (got == -EAGAIN) continue;
      if (got <= 0) {
        std::fprintf(stderr, "tcp_stream: a download ended early (%s)\n",
                     got == 0 ? "EOF" : std::strerror(static_cast<int>(-got)));
        return 1;
      }
      if (c.written == 0) c.first = now() - start;
      c.written += static_cast<uint64_t>(got);
    }
  }
  const double end = now();
  if (total_of(cs) == 0) {
    std::fprintf(stderr, "tcp_stream: nothing received\n");
    return 1;
  }
  report(cs, end - start, true);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::signal(SIGPIPE, SIG_IGN);
  const std::string mode = argc > 1 ? argv[1] : "";
  if ((mode == "sink" || mode == "source") && argc == 3)
    serve(std::atoi(argv[2]), mode == "source");
  if ((mode == "up" || mode == "down") && argc == 5) {
    const int port = std::atoi(argv[2]), conns = std::atoi(argv[3]);
    const double seconds = std::atof(argv[4]);
    if (conns < 1 || seconds <= 0) {
      std::fprintf(stderr, "tcp_stream: CONNS and SECONDS must be positive\n");
      return 2;
    }
    return mode == "up" ? run_up(port, conns, seconds) : run_down(port, conns, seconds);
  }
  std::fprintf(stderr,
               "usage: tcp_stream sink|source PORT\n"
               "       tcp_stream up|down PORT CONNS SECONDS\n");
  return 2;
}
