#pragma once
// The file keepalived's `track_file` reads (weight 0): "0" while this usher is fit to hold the
// floating address, "1" when it is not, so that a usher alive but useless (no healthy backend
// in a pool, or stopping) gives the address up. Written only when the state changes, by a
// rename over the old file, so a reader never sees half a file.
#include <optional>
#include <string>

namespace usher::cluster {

class HealthFile {
 public:
  // `path` empty: nothing is written. A new path writes at the next update().
  void set_path(const std::string& path);
  // The error, or empty.
  std::string update(bool fit);

 private:
  std::string path_;
  std::optional<bool> written_;
};

}  // namespace usher::cluster
