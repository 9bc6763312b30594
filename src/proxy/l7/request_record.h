#pragma once
// What is kept of a finished request: its access log line and its counters (listener, route).
// Worker thread only.
#include "proxy/l7/session.h"

namespace usher::proxy::l7 {

// The request's time runs from its first bytes to its last answer byte, as nginx's request_time.
void finish_request(Client& c, const RequestInfo& info);

}  // namespace usher::proxy::l7
