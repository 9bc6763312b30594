#pragma once
// The name a test parameterized over the event-loop backend carries in its id.
#include <gtest/gtest.h>

#include <string>

#include "net/reactor.h"

namespace usher {

inline std::string io_backend_name(const ::testing::TestParamInfo<net::IoBackend>& info) {
  return info.param == net::IoBackend::kEpoll ? "epoll" : "io_uring";
}

}  // namespace usher
