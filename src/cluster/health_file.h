#pragma once
// The file keepalived's `track_file` reads (weight 0): "0" while this usher is fit to hold the
// floating address, "1" when it is not, so that a usher alive but useless (no healthy backend
// in a pool, or stopping) gives the address up. Written by a rename over the old file, so a
// reader never sees half a file: at once when the state changes, and again every second, so
// that a file another process wrote (the predecessor of a binary upgrade, stopping) is put
// right.
#include <cstdint>
#include <optional>
#include <string>

namespace usher::cluster {

class HealthFile {
 public:
  static constexpr uint64_t kRewriteMs = 1000;

  // `path` empty: nothing is written. A new path writes at the next update(); the old one is
  // left saying "1", so a VRRP daemon still watching it does not take this usher for fit.
  std::string set_path(const std::string& path);
  // The error, or empty.
  std::string update(bool fit, uint64_t now_ms);

 private:
  std::string write(const std::string& path, bool fit);

  std::string path_;
  std::optional<bool> written_;
  uint64_t written_ms_ = 0;
};

}  // namespace usher::cluster
