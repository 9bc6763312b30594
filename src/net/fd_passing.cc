#include "net/fd_passing.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace usher::net {

namespace {

std::string errno_text(const char* what) {
  return std::string(what) + ": " + std::strerror(errno);
}

}  // namespace

std::string send_fds(int socket, std::string_view text, std::span<const int> fds) {
  if (fds.size() > kMaxFdsPerMessage || text.size() > kMaxFdMessageText) {
    return "message too large to hand over";
  }
  // A message with descriptors must carry at least one byte.
  std::string body = text.empty() ? std::string(1, '\0') : std::string(text);
  iovec iov{body.data(), body.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  std::vector<char> control(CMSG_SPACE(sizeof(int) * fds.size()));
  if (!fds.empty()) {
    msg.msg_control = control.data();
    msg.msg_controllen = control.size();
    cmsghdr* header = CMSG_FIRSTHDR(&msg);
    header->cmsg_level = SOL_SOCKET;
    header->cmsg_type = SCM_RIGHTS;
    header->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(header), fds.data(), sizeof(int) * fds.size());
  }
  ssize_t n;
  do {
    n = ::sendmsg(socket, &msg, MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return errno_text("sendmsg");
  return {};
}

Expected<FdMessage> receive_fds(int socket) {
  std::string body(kMaxFdMessageText + 1, '\0');
  iovec iov{body.data(), body.size()};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFdsPerMessage)];
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ssize_t n;
  do {
    n = ::recvmsg(socket, &msg, MSG_CMSG_CLOEXEC);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return Error{errno == EAGAIN ? "no answer in time" : errno_text("recvmsg")};
  FdMessage message;
  for (cmsghdr* h = CMSG_FIRSTHDR(&msg); h != nullptr; h = CMSG_NXTHDR(&msg, h)) {
    if (h->cmsg_level != SOL_SOCKET || h->cmsg_type != SCM_RIGHTS) continue;
    const size_t count = (h->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    const size_t first = message.fds.size();
    message.fds.resize(first + count);
    std::memcpy(message.fds.data() + first, CMSG_DATA(h), count * sizeof(int));
  }
  if (n == 0 || (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0) {
    for (int fd : message.fds) ::close(fd);
    return Error{n == 0 ? "the other process closed the connection" : "message cut short"};
  }
  body.resize(static_cast<size_t>(n));
  if (body == std::string_view("\0", 1)) body.clear();
  message.text = std::move(body);
  return message;
}

Expected<std::pair<int, int>> fd_passing_pair() {
  int pair[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) < 0) {
    return Error{errno_text("socketpair")};
  }
  return std::pair{pair[0], pair[1]};
}

}  // namespace usher::net
