#pragma once
// Tells the service manager where the process stands, for a systemd unit of Type=notify
// (dist/usher.service): READY=1 once every listener accepts, RELOADING=1 then READY=1 around a
// reload (by SIGHUP or the admin API), STOPPING=1 when a stop begins. Each is one datagram to
// $NOTIFY_SOCKET; without that variable (not started by systemd) nothing is sent.
#include <string_view>

namespace usher::app {

void notify_ready(std::string_view status);
void notify_reloading();
void notify_stopping();

}  // namespace usher::app
