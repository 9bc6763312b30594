#pragma once
// Binary upgrade: `usher run -c F --upgrade` takes the running process's listening sockets over
// the unix socket `upgrade_socket` names (SCM_RIGHTS), serves on them, then tells the old process
// to stop accepting and drain. The sockets are never closed in between, so the kernel keeps
// queueing connections on them and none is refused: whichever process accepts takes it.
//
// The exchange, over one SOCK_SEQPACKET connection:
//   old -> new  "usher-upgrade 1 PID", then messages of lines "KIND ADDRESS" (tcp, udp, admin)
//               each with the sockets it names, then an empty message
//   new -> old  "ready PID"   once it serves: the old one stops listening on the path and drains
//   old -> new  "draining"    the path is free for the new one to listen on
#include <sys/types.h>
#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "base/address.h"
#include "base/expected.h"

namespace usher::app {

// A listening socket and what it listens on.
struct HandedSocket {
  std::string kind;  // tcp | udp | admin
  Address address;
  int fd = -1;
};

// The running process's side: waits on the path for a successor, on a thread of its own.
class UpgradeOffer {
 public:
  struct Hooks {
    // Copies (dup) of every listening socket, which the offer closes once sent.
    std::function<std::vector<HandedSocket>()> sockets;
    // The successor serves on them: stop accepting and drain.
    std::function<void(pid_t successor)> handed_over;
  };
  // Listens on `path`. Refused while another process listens there (that one is upgraded with
  // --upgrade, not replaced); a stale file is replaced.
  static Expected<std::unique_ptr<UpgradeOffer>> open(const std::string& path, Hooks hooks);
  UpgradeOffer(const UpgradeOffer&) = delete;
  UpgradeOffer& operator=(const UpgradeOffer&) = delete;
  ~UpgradeOffer();  // removes the path unless a successor listens there now

 private:
  UpgradeOffer(std::string path, int listener, ino_t inode, int stop_fd, Hooks hooks);
  void run();
  // One successor's exchange; true once it took over.
  bool hand_over(int connection);

  std::string path_;
  int listener_;
  ino_t inode_;  // of the path as this process made it
  int stop_fd_;  // eventfd: the destructor wakes the thread
  Hooks hooks_;
  std::atomic<bool> handed_over_{false};
  std::thread thread_;
};

// The successor's side.
class UpgradeTakeover {
 public:
  // Connects to the running process and receives its sockets.
  static Expected<std::unique_ptr<UpgradeTakeover>> connect(const std::string& path);
  UpgradeTakeover(const UpgradeTakeover&) = delete;
  UpgradeTakeover& operator=(const UpgradeTakeover&) = delete;
  ~UpgradeTakeover();  // closes the sockets nobody took and the connection

  // The sockets of `kind` on `address` not taken yet, now the caller's.
  std::vector<int> take(std::string_view kind, const Address& address);
  // Every socket not taken yet, now the caller's (to close: no listener of the new configuration
  // has its address).
  std::vector<HandedSocket> take_rest();
  // This process serves: the old one drains. Waits until it has stopped listening on the path;
  // the problem, or empty.
  std::string ready();
  pid_t predecessor() const { return predecessor_; }

 private:
  UpgradeTakeover(int connection, pid_t predecessor, std::vector<HandedSocket> sockets)
      : connection_(connection), predecessor_(predecessor), sockets_(std::move(sockets)) {}

  int connection_;
  pid_t predecessor_;
  std::vector<HandedSocket> sockets_;
};

}  // namespace usher::app
