#include "cluster/health_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace usher::cluster {

void HealthFile::set_path(const std::string& path) {
  if (path == path_) return;
  path_ = path;
  written_.reset();
}

std::string HealthFile::update(bool fit) {
  if (path_.empty() || written_ == fit) return {};
  const std::string temporary = path_ + ".tmp";
  const int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return "health_file " + temporary + ": " + std::strerror(errno);
  const char* text = fit ? "0\n" : "1\n";
  const bool whole = ::write(fd, text, 2) == 2;
  const int saved = errno;
  ::close(fd);
  if (!whole || std::rename(temporary.c_str(), path_.c_str()) != 0) {
    const std::string error = std::strerror(whole ? errno : saved);
    ::unlink(temporary.c_str());
    return "health_file " + path_ + ": " + error;
  }
  written_ = fit;
  return {};
}

}  // namespace usher::cluster
