#include "proxy/l7/error_response.h"

#include <string>

namespace usher::proxy::l7 {

namespace {

struct Canned {
  int status;
  const char* reason;
};

constexpr Canned kCanned[] = {
    {400, "Bad Request"},           {404, "Not Found"},
    {408, "Request Timeout"},       {413, "Content Too Large"},
    {414, "URI Too Long"},          {431, "Request Header Fields Too Large"},
    {500, "Internal Server Error"}, {501, "Not Implemented"},
    {502, "Bad Gateway"},           {503, "Service Unavailable"},
    {504, "Gateway Timeout"},       {505, "HTTP Version Not Supported"},
};

std::string build(const Canned& c) {
  std::string body = std::to_string(c.status) + " " + c.reason + "\n";
  return "HTTP/1.1 " + std::to_string(c.status) + " " + c.reason +
         "\r\nContent-Type: text/plain\r\nContent-Length: " + std::to_string(body.size()) +
         (c.status == 503 ? "\r\nRetry-After: 1" : "") + "\r\nConnection: close\r\n\r\n" + body;
}

struct Table {
  std::string responses[std::size(kCanned)];
  Table() {
    for (size_t i = 0; i < std::size(kCanned); ++i) responses[i] = build(kCanned[i]);
  }
};

const Table& table() {
  static const Table instance;
  return instance;
}

}  // namespace

std::string_view error_response(int status) {
  const Table& t = table();
  for (size_t i = 0; i < std::size(kCanned); ++i) {
    if (kCanned[i].status == status) return t.responses[i];
  }
  return error_response(500);
}

}  // namespace usher::proxy::l7
