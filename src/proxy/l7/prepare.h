#pragma once
// From a parsed request head to what is sent next: the route decides, and either the head for
// the backend (forwarding fields, header policy, path rewrite, sticky cookie) or usher's own
// complete response is serialised. Pure apart from the worker's random numbers.
#include "codec/http1/message.h"
#include "net/buffer_pool.h"
#include "proxy/l7/failure.h"
#include "proxy/l7/session.h"

namespace usher::proxy::l7 {

// Fills `info` and `out`, or says what to answer instead.
Failure prepare_request(Client& c, const http1::RequestHead& head, RequestInfo& info,
                        net::Buffer& out);

}  // namespace usher::proxy::l7
