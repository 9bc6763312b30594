// Whether zero-copy sends would pay for what usher writes: the sender's CPU per send of N bytes
// over loopback TCP, copied (send, io_uring send) against zero-copy (MSG_ZEROCOPY with its
// completion notifications, io_uring send_zc). A reader thread drains the other end.
// Run: taskset -c 1 build/bench/send_zerocopy
#include <benchmark/benchmark.h>
#include <liburing.h>
#include <linux/errqueue.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {

// A connected loopback pair whose far end a thread reads and discards until the near end closes.
class Drained {
 public:
  Drained() {
    int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof address;
    if (::bind(listener, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
        ::listen(listener, 1) != 0 ||
        ::getsockname(listener, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
      throw std::runtime_error(std::strerror(errno));
    }
    near_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (::connect(near_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
      throw std::runtime_error(std::strerror(errno));
    }
    int far = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
    ::close(listener);
    reader_ = std::thread([far] {
      std::vector<char> sink(1 << 18);
      while (::read(far, sink.data(), sink.size()) > 0) {
      }
      ::close(far);
    });
  }
  ~Drained() {
    ::shutdown(near_, SHUT_WR);
    reader_.join();
    ::close(near_);
  }
  int fd() const { return near_; }

 private:
  int near_ = -1;
  std::thread reader_;
};

// Reads the zero-copy completions queued on the socket's error queue; counts those the kernel
// had to copy after all (on loopback the receiver's queue cannot hold the sender's pages).
void reap_notifications(int fd, int64_t& copied) {
  while (true) {
    char control[128];
    msghdr message{};
    message.msg_control = control;
    message.msg_controllen = sizeof control;
    if (::recvmsg(fd, &message, MSG_ERRQUEUE | MSG_DONTWAIT) < 0) return;
    for (cmsghdr* c = CMSG_FIRSTHDR(&message); c; c = CMSG_NXTHDR(&message, c)) {
      auto* error = reinterpret_cast<sock_extended_err*>(CMSG_DATA(c));
      if (error->ee_origin != SO_EE_ORIGIN_ZEROCOPY) continue;
      if (error->ee_code & SO_EE_CODE_ZEROCOPY_COPIED)
        copied += error->ee_data - error->ee_info + 1;
    }
  }
}

// Sends all of data; with MSG_ZEROCOPY, `copied` counts what the kernel copied anyway, and the
// notices are read whenever too many are unread for another zero-copy send.
void send_all(int fd, const char* data, size_t size, int flags, int64_t& copied) {
  while (size > 0) {
    ssize_t n = ::send(fd, data, size, flags);
    if (n < 0 && errno == ENOBUFS) {
      reap_notifications(fd, copied);
      continue;
    }
    if (n < 0) throw std::runtime_error(std::strerror(errno));
    data += n;
    size -= static_cast<size_t>(n);
  }
}

void BM_Send(benchmark::State& state) {
  Drained pair;
  std::string payload(static_cast<size_t>(state.range(0)), 'x');
  int64_t copied = 0;
  for (auto _ : state) send_all(pair.fd(), payload.data(), payload.size(), 0, copied);
  state.SetBytesProcessed(state.iterations() * state.range(0));
}

void BM_SendZerocopy(benchmark::State& state) {
  Drained pair;
  int one = 1;
  if (::setsockopt(pair.fd(), SOL_SOCKET, SO_ZEROCOPY, &one, sizeof one) != 0) {
    state.SkipWithError("SO_ZEROCOPY refused");
    return;
  }
  std::string payload(static_cast<size_t>(state.range(0)), 'x');
  int64_t copied = 0, sent = 0;
  for (auto _ : state) {
    send_all(pair.fd(), payload.data(), payload.size(), MSG_ZEROCOPY, copied);
    if (++sent % 32 == 0) reap_notifications(pair.fd(), copied);
  }
  reap_notifications(pair.fd(), copied);
  state.SetBytesProcessed(state.iterations() * state.range(0));
  state.counters["copied_anyway"] = sent ? static_cast<double>(copied) / sent : 0;
}

// io_uring, as usher's loop uses it: a batch of sends per submit, then their completions.
void uring_sends(benchmark::State& state, bool zero_copy) {
  constexpr unsigned kBatch = 16;
  Drained pair;
  io_uring ring;
  if (io_uring_queue_init(64, &ring, 0) != 0) {
    state.SkipWithError("io_uring refused");
    return;
  }
  std::string payload(static_cast<size_t>(state.range(0)), 'x');
  for (auto _ : state) {
    for (unsigned i = 0; i < kBatch; ++i) {
      io_uring_sqe* sqe = io_uring_get_sqe(&ring);
      if (zero_copy) {
        io_uring_prep_send_zc(sqe, pair.fd(), payload.data(), payload.size(), MSG_WAITALL, 0);
      } else {
        io_uring_prep_send(sqe, pair.fd(), payload.data(), payload.size(), MSG_WAITALL);
      }
    }
    io_uring_submit(&ring);
    // A zero-copy send completes twice: its result, flagged MORE, then the notice that its pages
    // are free. A send is done at the completion without MORE.
    for (unsigned done = 0; done < kBatch;) {
      io_uring_cqe* cqe = nullptr;
      if (io_uring_wait_cqe(&ring, &cqe) != 0) break;
      if (cqe->res < 0 && !(cqe->flags & IORING_CQE_F_NOTIF)) {
        state.SkipWithError(std::strerror(-cqe->res));
      }
      if (!(cqe->flags & IORING_CQE_F_MORE)) ++done;
      io_uring_cqe_seen(&ring, cqe);
    }
  }
  io_uring_queue_exit(&ring);
  state.SetItemsProcessed(state.iterations() * kBatch);
  state.SetBytesProcessed(state.iterations() * kBatch * state.range(0));
}

void BM_UringSend(benchmark::State& state) {
  uring_sends(state, false);
}
void BM_UringSendZerocopy(benchmark::State& state) {
  uring_sends(state, true);
}

// A response head, a page, a buffer's worth, a large body chunk.
void sizes(benchmark::internal::Benchmark* b) {
  for (int size : {256, 4096, 16384, 65536}) b->Arg(size);
}
BENCHMARK(BM_Send)->Apply(sizes);
BENCHMARK(BM_SendZerocopy)->Apply(sizes);
BENCHMARK(BM_UringSend)->Apply(sizes);
BENCHMARK(BM_UringSendZerocopy)->Apply(sizes);

}  // namespace

BENCHMARK_MAIN();
