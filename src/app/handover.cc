// The binary upgrade, in the process that hands its sockets over and in the one that takes them
// (upgrade.h has the exchange).
#include <fcntl.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cerrno>

#include "app/server.h"

namespace usher::app {

namespace {

const char* kind_of(const config::Listener& listener) {
  return listener.protocol == config::Protocol::kUdp ? "udp" : "tcp";
}

bool listed(const config::Config& config, const HandedSocket& socket) {
  if (socket.kind == "admin") return true;
  for (const config::Listener& l : config.listeners) {
    if (l.listen == socket.address && socket.kind == kind_of(l)) return true;
  }
  return false;
}

}  // namespace

void Server::keep_copies(const config::Config& config, const std::vector<std::vector<int>>& fds,
                         const std::vector<std::vector<std::pair<size_t, int>>>& more) {
  if (first_.upgrade_socket.empty()) return;
  auto keep = [&](size_t listener, int fd) {
    const config::Listener& l = config.listeners[listener];
    const int copy = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (copy >= 0) copies_.push_back({kind_of(l), l.listen, copy});
  };
  for (const auto& worker : fds) {
    for (size_t l = 0; l < worker.size(); ++l) {
      if (worker[l] >= 0) keep(l, worker[l]);
    }
  }
  for (const auto& worker : more) {
    for (const auto& [listener, fd] : worker) keep(listener, fd);
  }
}

void Server::keep_first_copies(const std::vector<std::vector<int>>& fds,
                               const std::vector<std::vector<std::pair<size_t, int>>>& more) {
  std::lock_guard lock(reload_mutex_);
  keep_copies(current_->config, fds, more);
  if (admin_ && !first_.upgrade_socket.empty()) {
    const int copy = ::fcntl(admin_->listening_fd(), F_DUPFD_CLOEXEC, 0);
    if (copy >= 0) copies_.push_back({"admin", *first_.admin, copy});
  }
}

// A listener a reload removed must close for real: a copy left open would keep its port
// accepting into a queue nobody reads.
void Server::drop_copies_unlisted(const config::Config& config) {
  std::erase_if(copies_, [&config](const HandedSocket& s) {
    if (listed(config, s)) return false;
    ::close(s.fd);
    return true;
  });
}

std::vector<HandedSocket> Server::copies_to_hand_over() {
  std::lock_guard lock(reload_mutex_);
  std::vector<HandedSocket> sockets;
  for (const HandedSocket& s : copies_) {
    const int copy = ::fcntl(s.fd, F_DUPFD_CLOEXEC, 0);
    if (copy >= 0) sockets.push_back({s.kind, s.address, copy});
  }
  return sockets;
}

bool Server::offer_upgrade() {
  if (first_.upgrade_socket.empty()) return true;
  UpgradeOffer::Hooks hooks;
  hooks.sockets = [this] { return copies_to_hand_over(); };
  hooks.handed_over = [this](pid_t successor) {
    successor_.store(successor);
    // The control thread drains, as for a stop; one already under way must not take this for
    // a second signal (which exits at once).
    if (!stopping_started_.load()) ::kill(::getpid(), SIGTERM);
  };
  auto offer = UpgradeOffer::open(first_.upgrade_socket, std::move(hooks));
  if (!offer) {
    spdlog::error("{}", offer.error().message);
    return false;
  }
  offer_ = std::move(*offer);
  spdlog::info("upgrade: a new usher started with --upgrade takes over through {}",
               first_.upgrade_socket);
  return true;
}

// This process serves: sockets no listener took close, and the predecessor drains. Under the
// reload lock: the admin API (already serving) may ask for a reload meanwhile.
bool Server::finish_takeover() {
  std::lock_guard lock(reload_mutex_);
  for (const HandedSocket& s : takeover_->take_rest()) {
    spdlog::info("upgrade: {} {} is not in the configuration any more: closed", s.kind,
                 s.address.to_string());
    ::close(s.fd);
  }
  const pid_t predecessor = takeover_->predecessor();
  const std::string error = takeover_->ready();
  takeover_.reset();
  if (error.empty()) {
    spdlog::info("upgrade: serving; pid {} stops accepting and drains", predecessor);
    return true;
  }
  if (::kill(predecessor, 0) != 0 && errno == ESRCH) {  // it died: this one is all there is
    spdlog::warn("upgrade: pid {} is gone ({}); serving", predecessor, error);
    return true;
  }
  spdlog::error("upgrade: pid {} did not confirm it drains ({}) and still runs; stopping",
                predecessor, error);
  return false;
}

}  // namespace usher::app
