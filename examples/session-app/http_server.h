#pragma once
// A small HTTP/1.1 server on usher's reactor and codec: keep-alive, small bodies, one handler.
#include <functional>
#include <span>
#include <string>
#include <string_view>

#include "codec/http1/message.h"
#include "net/reactor.h"
#include "net/task.h"

namespace session_app {

struct Request {
  std::string_view method;
  std::string_view path;
  std::string_view query;
  std::span<const usher::http1::Header> headers;
  std::string_view body;
};

struct Response {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::string set_cookie;  // one Set-Cookie value, or empty
};

using Handler = std::function<usher::net::Task<Response>(const Request&)>;

// Accepts on listen_fd (bound and listening) until the reactor stops.
void serve(usher::net::Reactor& reactor, int listen_fd, Handler handler);

}  // namespace session_app
