// The binary upgrade, in the process that hands its sockets over and in the one that takes them
// (upgrade.h has the exchange).
#include <fcntl.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

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
    ::kill(::getpid(), SIGTERM);  // the control thread drains, as for a stop
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

// This process serves: sockets no listener took close, and the predecessor drains.
void Server::finish_takeover() {
  if (!takeover_) return;
  for (const HandedSocket& s : takeover_->take_rest()) {
    spdlog::info("upgrade: {} {} is not in the configuration any more: closed", s.kind,
                 s.address.to_string());
    ::close(s.fd);
  }
  if (std::string error = takeover_->ready(); !error.empty()) {
    spdlog::warn("upgrade: pid {} did not confirm it drains: {}", takeover_->predecessor(), error);
  } else {
    spdlog::info("upgrade: serving; pid {} stops accepting and drains", takeover_->predecessor());
  }
  takeover_.reset();
}

}  // namespace usher::app
