#pragma once
// `usher ctl`: a small client of the admin API, for scripts and operators at a shell.
#include <string>
#include <vector>

namespace usher::app {

struct CtlOptions {
  std::string admin = "127.0.0.1:9900";
  std::string token;               // default: $USHER_ADMIN_TOKEN
  std::vector<std::string> words;  // pools | metrics | drain|enable|disable POOL BACKEND
};

// Prints the answer's body; exit code 0 for a 2xx answer, 1 otherwise.
int ctl(const CtlOptions& options);

}  // namespace usher::app
