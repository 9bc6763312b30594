#include "app/service_notify.h"

#include <systemd/sd-daemon.h>
#include <time.h>

#include <cstdint>
#include <cstring>
#include <string>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace usher::app {

namespace {

void notify(const std::string& state) {
  // 0: nothing to notify (no NOTIFY_SOCKET); below 0: the socket refused it, which must not
  // stop the service, but the operator should know why systemd still waits.
  if (const int rc = sd_notify(0, state.c_str()); rc < 0) {
    spdlog::warn("service manager notification failed: {}", std::strerror(-rc));
  }
}

}  // namespace

void notify_ready(std::string_view status) {
  notify(fmt::format("READY=1\nSTATUS={}", status));
}

void notify_reloading() {
  // systemd 253 and later want the reload's start time with it (Type=notify-reload); older
  // ones ignore the field.
  timespec now{};
  ::clock_gettime(CLOCK_MONOTONIC, &now);
  const uint64_t micros =
      static_cast<uint64_t>(now.tv_sec) * 1'000'000 + static_cast<uint64_t>(now.tv_nsec) / 1000;
  notify(fmt::format("RELOADING=1\nMONOTONIC_USEC={}", micros));
}

void notify_stopping() {
  notify("STOPPING=1");
}

}  // namespace usher::app
