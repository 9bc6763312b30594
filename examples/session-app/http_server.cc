#include "http_server.h"

#include <cstring>
#include <vector>

#include "codec/http1/head_parser.h"
#include "net/socket.h"
#include "route/fields.h"

namespace session_app {

using usher::net::Socket;
using usher::net::Task;
namespace http1 = usher::http1;

namespace {

constexpr size_t kBufferBytes = 16 * 1024;
constexpr uint64_t kMaxBody = 4096;
constexpr uint64_t kIdleTimeoutMs = 60'000;

const char* reason(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 411:
      return "Length Required";
    case 413:
      return "Content Too Large";
    case 414:
      return "URI Too Long";
    case 431:
      return "Request Header Fields Too Large";
    case 501:
      return "Not Implemented";
    case 503:
      return "Service Unavailable";
    case 505:
      return "HTTP Version Not Supported";
    default:
      return "Unknown";
  }
}

std::string serialize(const Response& response, bool keep_alive) {
  std::string out = "HTTP/1.1 " + std::to_string(response.status) + " " + reason(response.status) +
                    "\r\nContent-Type: " + response.content_type +
                    "\r\nContent-Length: " + std::to_string(response.body.size()) +
                    "\r\nCache-Control: no-store\r\n";
  if (!response.set_cookie.empty()) out += "Set-Cookie: " + response.set_cookie + "\r\n";
  if (!keep_alive) out += "Connection: close\r\n";
  return out + "\r\n" + response.body;
}

Task<bool> send_all(Socket& socket, const std::string& out) {
  for (size_t sent = 0; sent < out.size();) {
    long n = co_await socket.write(out.data() + sent, out.size() - sent, 0);
    if (n <= 0) co_return false;
    sent += static_cast<size_t>(n);
  }
  co_return true;
}

Response error(int status, std::string_view message) {
  return {status, "application/json", "{\"error\":\"" + std::string(message) + "\"}\n", {}};
}

// Reads until buffer[0, received) holds a whole request with its body; the status of the
// answer to give instead (400, 413, 431) when it cannot, 0 when the peer went away.
Task<int> read_request(Socket& socket, std::vector<char>& buffer, size_t& received,
                       std::span<http1::Header> scratch, http1::RequestHead& head) {
  size_t scanned = 0;
  http1::ParseError parse_error;
  while (true) {
    auto status =
        http1::parse_request({buffer.data(), received}, {}, scratch, scanned, head, parse_error);
    if (status == http1::ParseStatus::kError) co_return parse_error.http_status;
    if (status == http1::ParseStatus::kComplete) break;
    if (received == buffer.size()) co_return 431;
    const uint64_t deadline = socket.reactor().now_ms() + kIdleTimeoutMs;
    long n = co_await socket.read(buffer.data() + received, buffer.size() - received, deadline);
    if (n <= 0) co_return 0;
    received += static_cast<size_t>(n);
  }
  if (head.framing.kind == http1::Framing::Kind::kChunked) co_return 411;
  if (head.framing.length > kMaxBody) co_return 413;
  while (received < head.head_bytes + head.framing.length) {
    const uint64_t deadline = socket.reactor().now_ms() + kIdleTimeoutMs;
    long n = co_await socket.read(buffer.data() + received, buffer.size() - received, deadline);
    if (n <= 0) co_return 0;
    received += static_cast<size_t>(n);
  }
  co_return 200;
}

Task<void> serve_connection(usher::net::Reactor& reactor, int fd, const Handler& handler) {
  Socket socket(reactor, fd);
  std::vector<char> buffer(kBufferBytes);
  std::vector<http1::Header> scratch(100);
  size_t received = 0;
  while (true) {
    http1::RequestHead head;
    int status = co_await read_request(socket, buffer, received, scratch, head);
    if (status == 0) co_return;
    if (status != 200) {
      const std::string out = serialize(error(status, reason(status)), false);
      bool sent = co_await send_all(socket, out);
      (void)sent;
      co_return;
    }
    Request request{head.method_text, {}, {}, head.headers, {}};
    usher::route::split_target(head.target, request.path, request.query);
    request.body = {buffer.data() + head.head_bytes, head.framing.length};
    Response response = co_await handler(request);
    const std::string out = serialize(response, head.keep_alive);
    bool sent = co_await send_all(socket, out);
    if (!sent || !head.keep_alive) co_return;
    const size_t used = head.head_bytes + head.framing.length;
    std::memmove(buffer.data(), buffer.data() + used, received - used);
    received -= used;
  }
}

Task<void> accept_loop(usher::net::Reactor& reactor, int listen_fd, Handler handler) {
  Socket listener(reactor, listen_fd);
  while (true) {
    long fd = co_await listener.accept(0);
    if (fd == -ECANCELED) co_return;
    if (fd >= 0) usher::net::spawn(serve_connection(reactor, static_cast<int>(fd), handler));
  }
}

}  // namespace

void serve(usher::net::Reactor& reactor, int listen_fd, Handler handler) {
  usher::net::spawn(accept_loop(reactor, listen_fd, std::move(handler)));
  reactor.run({});
}

}  // namespace session_app
