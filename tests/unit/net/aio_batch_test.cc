// Writes of many sockets in one io_submit: each op gets its own result, in the order given, and
// what the kernel refuses to queue is handed back to be run the ordinary way.
#include "net/aio_batch.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "net/reactor.h"
#include "net/socket.h"

namespace usher::net {
namespace {

struct Pair {
  std::unique_ptr<Socket> near;
  int far = -1;
  ~Pair() {
    if (far >= 0) ::close(far);
  }
};

class AioBatchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    batch = AioBatch::create();
    if (!batch) GTEST_SKIP() << "the kernel refuses an AIO context here";
  }
  Pair& connect_pair() {
    int fds[2];
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds), 0);
    pairs.push_back(std::make_unique<Pair>());
    pairs.back()->near = std::make_unique<Socket>(*reactor, fds[0]);
    pairs.back()->far = fds[1];
    return *pairs.back();
  }
  static std::string drain(int fd) {
    std::string got;
    char buffer[4096];
    for (ssize_t n; (n = ::read(fd, buffer, sizeof buffer)) > 0;) got.append(buffer, n);
    return got;
  }
  std::unique_ptr<Reactor> reactor = make_epoll_reactor(EpollWrites::kOneByOne);
  std::unique_ptr<AioBatch> batch;
  std::vector<std::unique_ptr<Pair>> pairs;
};

IoOp write_op(Socket& socket, const std::string& text) {
  IoOp op(OpKind::kWrite);
  op.socket = &socket;
  op.buffer = const_cast<char*>(text.data());
  op.length = text.size();
  return op;
}

TEST_F(AioBatchTest, EachSocketGetsItsOwnBytesAndResult) {
  const std::string head = "HTTP/1.1 200 OK\r\n\r\n", body = "hello";
  std::vector<std::string> texts;  // ops point into these: no reallocation
  texts.reserve(40);
  std::vector<IoOp> ops;
  ops.reserve(40);
  for (int i = 0; i < 40; ++i) {
    Pair& pair = connect_pair();
    texts.push_back("request " + std::to_string(i));
    ops.push_back(write_op(*pair.near, texts.back()));
  }
  // One of them gathers two pieces.
  std::array<iovec, 2> iov{{{const_cast<char*>(head.data()), head.size()},
                            {const_cast<char*>(body.data()), body.size()}}};
  ops[7] = IoOp(OpKind::kWritev);
  ops[7].socket = pairs[7]->near.get();
  ops[7].iov = iov.data();
  ops[7].iov_count = 2;
  texts[7] = head + body;

  std::vector<IoOp*> pointers;
  for (IoOp& op : ops) pointers.push_back(&op);
  std::vector<long> results(ops.size());
  batch->write(pointers.data(), pointers.size(), results.data());
  for (size_t i = 0; i < ops.size(); ++i) {
    EXPECT_EQ(results[i], static_cast<long>(texts[i].size())) << i;
    EXPECT_EQ(drain(pairs[i]->far), texts[i]) << i;
  }
}

TEST_F(AioBatchTest, AFullSocketSaysEagainAndTheOthersStillGo) {
  Pair& full = connect_pair();
  std::string chunk(1 << 16, 'x');
  while (::send(full.near->fd(), chunk.data(), chunk.size(), MSG_DONTWAIT) > 0) {
  }
  Pair& open = connect_pair();
  std::string text = "still goes";
  IoOp blocked = write_op(*full.near, text), fine = write_op(*open.near, text);
  IoOp* ops[] = {&blocked, &fine};
  long results[2];
  batch->write(ops, 2, results);
  EXPECT_EQ(results[0], -EAGAIN);
  EXPECT_EQ(results[1], static_cast<long>(text.size()));
  EXPECT_EQ(drain(open.far), text);
}

TEST_F(AioBatchTest, APeerThatClosedGivesEpipeNotASignal) {
  Pair& gone = connect_pair();
  ::close(std::exchange(gone.far, -1));
  std::string text = "to nobody";
  IoOp op = write_op(*gone.near, text);
  IoOp* ops[] = {&op};
  long result = 0;
  batch->write(ops, 1, &result);
  EXPECT_EQ(result, -EPIPE);
}

TEST_F(AioBatchTest, AnOpTheKernelWillNotQueueIsHandedBackUnrun) {
  Pair& first = connect_pair();
  Pair& closed = connect_pair();
  Pair& last = connect_pair();
  closed.near->close();  // its descriptor is now -1: io_submit refuses it at submission
  std::string text = "around it";
  IoOp a = write_op(*first.near, text), b = write_op(*closed.near, text);
  IoOp c = write_op(*last.near, text);
  IoOp* ops[] = {&a, &b, &c};
  long results[3];
  batch->write(ops, 3, results);
  EXPECT_EQ(results[0], static_cast<long>(text.size()));
  EXPECT_EQ(results[1], AioBatch::kNotRun);
  EXPECT_EQ(results[2], static_cast<long>(text.size()));
  EXPECT_EQ(drain(first.far), text);
  EXPECT_EQ(drain(last.far), text);
}

}  // namespace
}  // namespace usher::net
