#include "cluster/health_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

namespace usher::cluster {

std::string HealthFile::set_path(const std::string& path) {
  if (path == path_) return {};
  std::string error;
  if (!path_.empty() && written_) error = write(path_, false);
  path_ = path;
  written_.reset();
  return error;
}

std::string HealthFile::update(bool fit, uint64_t now_ms) {
  if (path_.empty() || (written_ == fit && now_ms - written_ms_ < kRewriteMs)) return {};
  std::string error = write(path_, fit);
  if (error.empty()) {
    written_ = fit;
    written_ms_ = now_ms;
  }
  return error;
}

// The temporary file is this process's own: during a binary upgrade two processes write.
std::string HealthFile::write(const std::string& path, bool fit) {
  const std::string temporary = path + "." + std::to_string(::getpid()) + ".tmp";
  const int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return "health_file " + temporary + ": " + std::strerror(errno);
  const char* text = fit ? "0\n" : "1\n";
  const bool whole = ::write(fd, text, 2) == 2;
  const int saved = errno;
  ::close(fd);
  if (!whole || std::rename(temporary.c_str(), path.c_str()) != 0) {
    const std::string error = std::strerror(whole ? errno : saved);
    ::unlink(temporary.c_str());
    return "health_file " + path + ": " + error;
  }
  return {};
}

}  // namespace usher::cluster
