#include "admin/admin.h"

#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include "codec/http1/head_parser.h"

namespace usher::admin {

AdminServer::AdminServer(const Address& listen, Control& control, const metrics::Registry& metrics,
                         const log::AccessLog* access_log, std::string token)
    : listen_(listen),
      sampler_(metrics, control),
      context_{control, metrics, access_log, sampler_, std::move(token)},
      reactor_(net::make_epoll_reactor(net::EpollWrites::kOneByOne)) {}

AdminServer::~AdminServer() {
  stop();
}

std::string AdminServer::bind(int inherited) {
  if (inherited >= 0) {
    listener_ = std::make_unique<net::Socket>(*reactor_, inherited);
    return {};
  }
  int fd = ::socket(listen_.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (fd < 0 || ::bind(fd, listen_.sockaddr_ptr(), listen_.length()) < 0 || ::listen(fd, 128) < 0) {
    std::string message =
        "admin: cannot listen on " + listen_.to_string() + ": " + std::strerror(errno);
    if (fd >= 0) ::close(fd);
    return message;
  }
  listener_ = std::make_unique<net::Socket>(*reactor_, fd);
  return {};
}

void AdminServer::start() {
  sampler_.start();
  thread_ = std::thread([this] {
    net::spawn(accept_loop());
    // stop() cancels the accept; the accept loop then ends the reactor, so no frame is left.
    reactor_->run({.on_wake =
                       [this] {
                         if (stopping_) reactor_->cancel(*listener_);
                       },
                   .on_idle = {},
                   .idle_work_waiting = {},
                   .on_turn_end = {}});
  });
}

void AdminServer::stop() {
  if (!thread_.joinable()) return;
  stopping_ = true;
  reactor_->wake();
  thread_.join();
  sampler_.stop();
}

net::Task<void> AdminServer::accept_loop() {
  while (true) {
    long fd = co_await listener_->accept(0);
    if (fd == -ECANCELED) break;
    if (fd >= 0) {
      net::spawn(serve(static_cast<int>(fd)));
    } else if (fd != -ECONNABORTED) {
      // Out of descriptors (or memory) the listener stays readable: pause rather than spin.
      co_await net::sleep_until(*reactor_, reactor_->now_ms() + 100);
    }
  }
  reactor_->stop();
}

// One request per connection: admin traffic is rare and small.
net::Task<void> AdminServer::serve(int fd) {
  net::Socket socket(*reactor_, fd);
  std::string buffer(8192, '\0');
  size_t received = 0, scanned = 0;
  std::vector<http1::Header> scratch(64);
  const uint64_t deadline = reactor_->now_ms() + 5000;
  std::string out;
  while (out.empty()) {
    long n = co_await socket.read(buffer.data() + received, buffer.size() - received, deadline);
    if (n <= 0) co_return;
    received += static_cast<size_t>(n);
    http1::RequestHead head;
    http1::ParseError parse_error;
    auto status = http1::parse_request({buffer.data(), received}, {4096, 8192, 64}, scratch,
                                       scanned, head, parse_error);
    if (status == http1::ParseStatus::kError) {
      out = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    } else if (status == http1::ParseStatus::kComplete) {
      out = respond(context_, head, draining_);
    } else if (received == buffer.size()) {
      out =
          "HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\n"
          "Connection: close\r\n\r\n";
    }
  }
  for (size_t sent = 0; sent < out.size();) {
    long n = co_await socket.write(out.data() + sent, out.size() - sent, deadline);
    if (n <= 0) break;
    sent += static_cast<size_t>(n);
  }
}

}  // namespace usher::admin
