#include "proxy/l7/error_response.h"

#include <string>

#include "proxy/l7/local_response.h"

namespace usher::proxy::l7 {

namespace {

constexpr int kStatuses[] = {400, 404, 408, 413, 414, 431, 500, 501, 502, 503, 504, 505};

std::string build(int status, std::string body = {}) {
  const std::string reason(reason_phrase(status));
  if (body.empty()) body = std::to_string(status) + " " + reason + "\n";
  return "HTTP/1.1 " + std::to_string(status) + " " + reason +
         "\r\nContent-Type: text/plain\r\nContent-Length: " + std::to_string(body.size()) +
         (status == 503 ? "\r\nRetry-After: 1" : "") + "\r\nConnection: close\r\n\r\n" + body;
}

struct Table {
  std::string responses[std::size(kStatuses)];
  std::string plain_http_on_tls =
      build(400, "400 Bad Request: a plain HTTP request was sent to an HTTPS port\n");
  Table() {
    for (size_t i = 0; i < std::size(kStatuses); ++i) responses[i] = build(kStatuses[i]);
  }
};

const Table& table() {
  static const Table instance;
  return instance;
}

}  // namespace

std::string_view error_response(int status) {
  const Table& t = table();
  for (size_t i = 0; i < std::size(kStatuses); ++i) {
    if (kStatuses[i] == status) return t.responses[i];
  }
  return error_response(500);
}

std::string_view plain_http_on_tls_response() {
  return table().plain_http_on_tls;
}

}  // namespace usher::proxy::l7
