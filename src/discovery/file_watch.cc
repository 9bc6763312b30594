#include "discovery/file_watch.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

namespace usher::discovery {

namespace {

constexpr uint32_t kEvents = IN_CLOSE_WRITE | IN_MOVED_TO;

}  // namespace

FileWatch::FileWatch(std::function<void()> changed) : changed_(std::move(changed)) {
  inotify_ = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (inotify_ >= 0) stop_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (inotify_ < 0 || stop_ < 0) {
    error_ = errno;  // watch() says it; without both descriptors no thread starts
    return;
  }
  thread_ = std::thread([this] { run(); });
}

FileWatch::~FileWatch() {
  if (thread_.joinable()) {
    const uint64_t one = 1;
    [[maybe_unused]] ssize_t n = ::write(stop_, &one, sizeof one);
    thread_.join();
  }
  if (inotify_ >= 0) ::close(inotify_);
  if (stop_ >= 0) ::close(stop_);
}

std::string FileWatch::watch(const std::vector<std::string>& files) {
  std::map<std::string, std::set<std::string>> wanted;  // directory -> names
  for (const std::string& file : files) {
    const std::filesystem::path path = std::filesystem::absolute(file).lexically_normal();
    wanted[path.parent_path().string()].insert(path.filename().string());
  }
  std::lock_guard lock(mutex_);
  if (!thread_.joinable()) return std::string("inotify: ") + std::strerror(error_);
  for (auto it = watches_.begin(); it != watches_.end();) {
    if (wanted.contains(it->first)) {
      ++it;
      continue;
    }
    ::inotify_rm_watch(inotify_, it->second);
    names_.erase(it->second);
    it = watches_.erase(it);
  }
  std::string error;
  for (auto& [directory, names] : wanted) {
    const int watch = ::inotify_add_watch(inotify_, directory.c_str(), kEvents);
    if (watch < 0) {
      error = "cannot watch " + directory + ": " + std::strerror(errno);
      continue;
    }
    watches_[directory] = watch;
    names_[watch] = std::move(names);
  }
  return error;
}

bool FileWatch::matches(int watch, const char* name) {
  std::lock_guard lock(mutex_);
  const auto it = names_.find(watch);
  return it != names_.end() && it->second.contains(name);
}

void FileWatch::run() {
  alignas(inotify_event) char buffer[4096];
  pollfd fds[2] = {{stop_, POLLIN, 0}, {inotify_, POLLIN, 0}};
  while (true) {
    if (::poll(fds, 2, -1) < 0 && errno != EINTR) return;
    if (fds[0].revents & POLLIN) return;
    if (!(fds[1].revents & POLLIN)) continue;
    bool hit = false;
    ssize_t n;
    while ((n = ::read(inotify_, buffer, sizeof buffer)) > 0) {
      for (char* at = buffer; at < buffer + n;) {
        const auto* event = reinterpret_cast<const inotify_event*>(at);
        // A full queue lost events: read the lists again rather than miss a change.
        hit = hit || (event->mask & IN_Q_OVERFLOW) ||
              (event->len > 0 && matches(event->wd, event->name));
        at += sizeof(inotify_event) + event->len;
      }
    }
    // One call for a burst of events: the callback reads every file again anyway.
    if (hit) changed_();
  }
}

}  // namespace usher::discovery
