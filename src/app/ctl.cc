#include "app/ctl.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "base/address.h"

namespace usher::app {

namespace {

// One blocking request over a fresh connection; the admin API closes after each answer.
bool exchange(const Address& address, const std::string& request, std::string& response) {
  int fd = ::socket(address.family(), SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || ::connect(fd, address.sockaddr_ptr(), address.length()) < 0) {
    std::fprintf(stderr, "usher ctl: cannot reach %s: %s\n", address.to_string().c_str(),
                 std::strerror(errno));
    if (fd >= 0) ::close(fd);
    return false;
  }
  for (size_t sent = 0; sent < request.size();) {
    ssize_t n = ::send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) break;
    sent += static_cast<size_t>(n);
  }
  char buffer[16384];
  for (ssize_t n; (n = ::recv(fd, buffer, sizeof buffer, 0)) > 0;) response.append(buffer, n);
  ::close(fd);
  return true;
}

}  // namespace

int ctl(const CtlOptions& options) {
  auto address = Address::parse(options.admin);
  if (!address) {
    std::fprintf(stderr, "usher ctl: %s\n", address.error().message.c_str());
    return 2;
  }
  const auto& w = options.words;
  std::string method = "GET", path;
  if (w.size() == 1 && w[0] == "pools") {
    path = "/api/v1/pools";
  } else if (w.size() == 1 && w[0] == "metrics") {
    path = "/metrics";
  } else if (w.size() == 1 && w[0] == "reload") {
    method = "POST";
    path = "/api/v1/reload";
  } else if (w.size() == 3 &&
             (w[0] == "drain" || w[0] == "enable" || w[0] == "disable" || w[0] == "remove")) {
    method = "POST";
    path = "/api/v1/pools/" + w[1] + "/backends/" + w[2] + "/" + w[0];
  } else if (w.size() == 4 && w[0] == "weight") {
    method = "POST";
    path = "/api/v1/pools/" + w[1] + "/backends/" + w[2] + "/weight?value=" + w[3];
  } else if ((w.size() == 3 || w.size() == 4) && w[0] == "add") {
    method = "POST";
    path = "/api/v1/pools/" + w[1] + "/backends?address=" + w[2] +
           (w.size() == 4 ? "&weight=" + w[3] : "");
  } else {
    std::fprintf(stderr,
                 "usage: usher ctl [--admin ADDR] [--token T] pools | metrics | reload | "
                 "drain|enable|disable|remove POOL BACKEND | weight POOL BACKEND W | "
                 "add POOL ADDRESS [WEIGHT]\n");
    return 2;
  }
  std::string token = options.token;
  if (token.empty()) {
    if (const char* env = std::getenv("USHER_ADMIN_TOKEN")) token = env;
  }
  std::string request = method + " " + path + " HTTP/1.1\r\nHost: " + options.admin +
                        "\r\nContent-Length: 0\r\nConnection: close\r\n";
  if (!token.empty()) request += "Authorization: Bearer " + token + "\r\n";
  request += "\r\n";
  std::string response;
  if (!exchange(*address, request, response)) return 1;
  const size_t body = response.find("\r\n\r\n");
  const int status = response.size() > 12 ? std::atoi(response.c_str() + 9) : 0;
  std::fputs(body == std::string::npos ? response.c_str() : response.c_str() + body + 4, stdout);
  if (status < 200 || status > 299) {
    std::fprintf(stderr, "usher ctl: HTTP %d\n", status);
    return 1;
  }
  return 0;
}

}  // namespace usher::app
