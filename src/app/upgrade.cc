#include "app/upgrade.h"

#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <optional>

#include "net/fd_passing.h"

namespace usher::app {

namespace {

constexpr std::string_view kGreeting = "usher-upgrade 1 ";
// The successor loads its configuration (certificates, DNS names) before it answers.
constexpr int kReadyWaitMs = 60'000;
constexpr int kExchangeTimeoutMs = 10'000;

std::string errno_text(std::string_view what) {
  return std::string(what) + ": " + std::strerror(errno);
}

sockaddr_un unix_address(const std::string& path) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::memcpy(address.sun_path, path.data(), std::min(path.size(), sizeof address.sun_path - 1));
  return address;
}

void set_timeouts(int fd, int milliseconds) {
  timeval tv{milliseconds / 1000, (milliseconds % 1000) * 1000};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

std::optional<pid_t> number_after(std::string_view text, std::string_view prefix) {
  if (text.substr(0, prefix.size()) != prefix) return std::nullopt;
  text.remove_prefix(prefix.size());
  pid_t pid = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), pid);
  if (ec != std::errc() || end != text.data() + text.size() || pid <= 0) return std::nullopt;
  return pid;
}

// Only the same user (or root) may take the sockets.
bool trusted_peer(int connection) {
  ucred peer{};
  socklen_t length = sizeof peer;
  if (::getsockopt(connection, SOL_SOCKET, SO_PEERCRED, &peer, &length) != 0) return false;
  return peer.uid == 0 || peer.uid == ::geteuid();
}

// The sockets in messages of at most kMaxFdsPerMessage, then the empty message that ends them.
std::string send_sockets(int connection, const std::vector<HandedSocket>& sockets) {
  for (size_t first = 0; first < sockets.size(); first += net::kMaxFdsPerMessage) {
    const size_t end = std::min(sockets.size(), first + net::kMaxFdsPerMessage);
    std::string text;
    std::vector<int> fds;
    for (size_t i = first; i < end; ++i) {
      text += sockets[i].kind + ' ' + sockets[i].address.to_string() + '\n';
      fds.push_back(sockets[i].fd);
    }
    if (std::string error = net::send_fds(connection, text, fds); !error.empty()) return error;
  }
  return net::send_fds(connection, {}, {});
}

// One message's lines, each with its socket; the sockets are closed on a malformed message.
std::string read_sockets(net::FdMessage& message, std::vector<HandedSocket>& out) {
  std::vector<HandedSocket> read;
  std::string_view text = message.text;
  size_t next_fd = 0;
  while (!text.empty()) {
    const size_t end = text.find('\n');
    const std::string_view line = text.substr(0, end);
    text.remove_prefix(end == std::string_view::npos ? text.size() : end + 1);
    const size_t space = line.find(' ');
    auto address = Address::parse(space == std::string_view::npos ? "" : line.substr(space + 1));
    if (!address || next_fd >= message.fds.size()) break;
    read.push_back({std::string(line.substr(0, space)), *address, message.fds[next_fd++]});
  }
  if (!text.empty() || next_fd != message.fds.size()) {
    for (int fd : message.fds) ::close(fd);
    return "the running usher sent sockets this one cannot read";
  }
  out.insert(out.end(), read.begin(), read.end());
  return {};
}

}  // namespace

Expected<std::unique_ptr<UpgradeOffer>> UpgradeOffer::open(const std::string& path, Hooks hooks) {
  const sockaddr_un address = unix_address(path);
  const auto* sa = reinterpret_cast<const sockaddr*>(&address);
  const int probe = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  const bool taken = probe >= 0 && ::connect(probe, sa, sizeof address) == 0;
  if (probe >= 0) ::close(probe);
  if (taken) {
    return Error{"upgrade_socket " + path +
                 ": another usher listens there; start this one with --upgrade to take over "
                 "from it"};
  }
  // A socket left by a process that died is replaced; anything else is not ours to remove.
  struct stat existing {};
  if (::lstat(path.c_str(), &existing) == 0) {
    if (!S_ISSOCK(existing.st_mode)) {
      return Error{"upgrade_socket " + path + ": a file that is not a socket is in the way"};
    }
    ::unlink(path.c_str());
  }
  const int fd = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  struct stat made {};
  if (fd < 0 || ::bind(fd, sa, sizeof address) != 0 || ::chmod(path.c_str(), 0600) != 0 ||
      ::listen(fd, 4) != 0 || ::stat(path.c_str(), &made) != 0) {
    Error error{errno_text("upgrade_socket " + path + ": cannot listen")};
    if (fd >= 0) ::close(fd);
    return error;
  }
  const int stop_fd = ::eventfd(0, EFD_CLOEXEC);
  if (stop_fd < 0) {
    ::close(fd);
    return Error{errno_text("eventfd")};
  }
  std::unique_ptr<UpgradeOffer> offer(
      new UpgradeOffer(path, fd, made.st_ino, stop_fd, std::move(hooks)));
  offer->thread_ = std::thread([raw = offer.get()] { raw->run(); });
  return offer;
}

UpgradeOffer::UpgradeOffer(std::string path, int listener, ino_t inode, int stop_fd, Hooks hooks)
    : path_(std::move(path)),
      listener_(listener),
      inode_(inode),
      stop_fd_(stop_fd),
      hooks_(std::move(hooks)) {}

UpgradeOffer::~UpgradeOffer() {
  const uint64_t one = 1;
  if (::write(stop_fd_, &one, sizeof one) < 0) spdlog::warn("{}", errno_text("upgrade: eventfd"));
  if (thread_.joinable()) thread_.join();
  ::close(stop_fd_);
  if (listener_ >= 0) ::close(listener_);
  struct stat now {};
  if (!handed_over_ && ::stat(path_.c_str(), &now) == 0 && now.st_ino == inode_) {
    ::unlink(path_.c_str());
  }
}

void UpgradeOffer::run() {
  while (true) {
    pollfd fds[2] = {{listener_, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0 && errno != EINTR) return;
    if (fds[1].revents != 0) return;
    if (fds[0].revents == 0) continue;
    const int connection = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
    if (connection < 0) {
      ::poll(nullptr, 0, 100);  // out of descriptors, say: the listener stays readable
      continue;
    }
    const bool done = hand_over(connection);
    ::close(connection);
    if (done) return;
  }
}

bool UpgradeOffer::hand_over(int connection) {
  if (!trusted_peer(connection)) {
    spdlog::warn("upgrade: refused a process of another user on {}", path_);
    return false;
  }
  set_timeouts(connection, kExchangeTimeoutMs);
  std::vector<HandedSocket> sockets = hooks_.sockets();
  if (sockets.empty()) {  // every configuration has a listener: this process is not serving yet
    spdlog::warn("upgrade: a new process asked to take over before this one serves; refused");
    return false;
  }
  std::string error =
      net::send_fds(connection, std::string(kGreeting) + std::to_string(::getpid()), {});
  if (error.empty()) error = send_sockets(connection, sockets);
  for (const HandedSocket& s : sockets) ::close(s.fd);
  if (!error.empty()) {
    spdlog::warn("upgrade: handing the listening sockets over failed ({}); still serving", error);
    return false;
  }
  spdlog::info("upgrade: {} listening sockets handed over; waiting for the new process to serve",
               sockets.size());
  pollfd fds[2] = {{connection, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
  if (::poll(fds, 2, kReadyWaitMs) <= 0 || fds[1].revents != 0) return false;
  auto ready = net::receive_fds(connection);
  const std::optional<pid_t> successor = ready ? number_after(ready->text, "ready ") : std::nullopt;
  if (!successor) {
    spdlog::warn("upgrade: the new process did not start serving ({}); still serving",
                 ready ? "unexpected answer" : ready.error().message);
    return false;
  }
  // The path is the successor's from now on: it listens there for the next upgrade.
  ::close(std::exchange(listener_, -1));
  handed_over_ = true;
  if (std::string sent = net::send_fds(connection, "draining", {}); !sent.empty()) {
    spdlog::warn("upgrade: telling pid {} the path is free failed: {}", *successor, sent);
  }
  hooks_.handed_over(*successor);
  return true;
}

Expected<std::unique_ptr<UpgradeTakeover>> UpgradeTakeover::connect(const std::string& path) {
  const sockaddr_un address = unix_address(path);
  const int fd = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (fd < 0) return Error{errno_text("socket")};
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
    Error error{errno_text("--upgrade: no running usher to take over from at " + path)};
    ::close(fd);
    return error;
  }
  if (!trusted_peer(fd)) {
    ::close(fd);
    return Error{"--upgrade: the process at " + path + " runs as another user"};
  }
  set_timeouts(fd, kExchangeTimeoutMs);
  auto greeting = net::receive_fds(fd);
  const std::optional<pid_t> from =
      greeting ? number_after(greeting->text, kGreeting) : std::nullopt;
  std::vector<HandedSocket> sockets;
  std::string error;
  if (!from) {
    error = greeting ? "the process at " + path + " does not speak usher's upgrade protocol"
                     : greeting.error().message;
  }
  while (error.empty()) {
    auto message = net::receive_fds(fd);
    if (!message) {
      error = message.error().message;
    } else if (message->text.empty() && message->fds.empty()) {
      break;
    } else {
      error = read_sockets(*message, sockets);
    }
  }
  std::unique_ptr<UpgradeTakeover> takeover(
      new UpgradeTakeover(fd, from.value_or(0), std::move(sockets)));
  if (!error.empty()) return Error{"--upgrade: taking the sockets over failed: " + error};
  return takeover;
}

UpgradeTakeover::~UpgradeTakeover() {
  for (const HandedSocket& s : sockets_) ::close(s.fd);
  ::close(connection_);
}

std::vector<int> UpgradeTakeover::take(std::string_view kind, const Address& address) {
  std::vector<int> taken;
  std::erase_if(sockets_, [&](const HandedSocket& s) {
    if (s.kind != kind || !(s.address == address)) return false;
    taken.push_back(s.fd);
    return true;
  });
  return taken;
}

std::vector<HandedSocket> UpgradeTakeover::take_rest() {
  return std::exchange(sockets_, {});
}

std::string UpgradeTakeover::ready() {
  if (std::string error = net::send_fds(connection_, "ready " + std::to_string(::getpid()), {});
      !error.empty()) {
    return error;
  }
  auto answer = net::receive_fds(connection_);
  if (!answer) return answer.error().message;
  if (answer->text != "draining") return "unexpected answer '" + answer->text + "'";
  return {};
}

}  // namespace usher::app
