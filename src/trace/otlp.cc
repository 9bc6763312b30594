#include "trace/otlp.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <chrono>

#include "base/version.h"

namespace usher::trace {

namespace {

void put_number(std::string& out, uint64_t value) {
  char digits[20];
  const auto end = std::to_chars(digits, digits + sizeof digits, value).ptr;
  out.append(digits, end);
}

void put_hex(std::string& out, uint64_t value) {
  char hex[16];
  write_hex(value, hex);
  out.append(hex, sizeof hex);
}

// Bytes a JSON string holds as they are.
constexpr auto kPlain = [] {
  std::array<bool, 256> plain{};
  for (int c = 0x20; c < 0x7f; ++c) plain[c] = c != '"' && c != '\\';
  return plain;
}();

// A JSON string: quotes, backslashes and control bytes escaped; bytes above 0x7f as Latin-1
// code points, so that any request bytes still make valid UTF-8.
void put_string(std::string& out, std::string_view s) {
  constexpr char kHex[] = "0123456789abcdef";
  out += '"';
  const char* at = s.data();
  const char* end = at + s.size();
  while (at < end) {
    const char* plain = at;
    while (plain < end && kPlain[static_cast<unsigned char>(*plain)]) ++plain;
    out.append(at, plain);
    if (plain == end) break;
    const auto c = static_cast<unsigned char>(*plain);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else {
      const char escaped[] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 0xf]};
      out.append(escaped, sizeof escaped);
    }
    at = plain + 1;
  }
  out += '"';
}

// Attributes after the first carry their comma.
class Attributes {
 public:
  explicit Attributes(std::string& out) : out_(out) { out_ += "\"attributes\":["; }
  ~Attributes() { out_ += ']'; }
  void text(std::string_view key, std::string_view value) {
    begin(key);
    out_ += "{\"stringValue\":";
    put_string(out_, value);
    out_ += "}}";
  }
  // int64 values are decimal strings in the protobuf JSON mapping.
  void number(std::string_view key, uint64_t value) {
    begin(key);
    out_ += "{\"intValue\":\"";
    put_number(out_, value);
    out_ += "\"}}";
  }

 private:
  void begin(std::string_view key) {
    if (!first_) out_ += ',';
    first_ = false;
    out_ += "{\"key\":";
    put_string(out_, key);
    out_ += ",\"value\":";
  }
  std::string& out_;
  bool first_ = true;
};

void put_attributes(const SpanRecord& s, std::string& out) {
  using T = SpanRecord::Text;
  Attributes a(out);
  a.text("http.request.method", s.get(T::kMethod));
  a.text("url.path", s.get(T::kPath));
  if (s.status) a.number("http.response.status_code", s.status);
  if (!s.get(T::kRoute).empty()) a.text("usher.route", s.get(T::kRoute));
  if (!s.get(T::kPool).empty()) a.text("usher.pool", s.get(T::kPool));
  if (s.kind == SpanKind::kClient) {
    char ip[INET6_ADDRSTRLEN] = {};
    if (s.backend_family && ::inet_ntop(s.backend_family, s.backend_ip, ip, sizeof ip)) {
      a.text("server.address", ip);
      a.number("server.port", s.backend_port);
    }
    a.number("usher.retry", s.retry);
  }
  if (!s.get(T::kError).empty()) a.text("error.type", s.get(T::kError));
}

void put_span(const SpanRecord& s, std::string& out) {
  using T = SpanRecord::Text;
  out += "{\"traceId\":\"";
  put_hex(out, s.trace.high);
  put_hex(out, s.trace.low);
  out += "\",\"spanId\":\"";
  put_hex(out, s.span);
  out += '"';
  if (s.parent) {
    out += ",\"parentSpanId\":\"";
    put_hex(out, s.parent);
    out += '"';
  }
  out += ",\"name\":";
  put_string(out, s.get(T::kMethod));
  out += ",\"kind\":";
  put_number(out, static_cast<uint64_t>(s.kind));
  out += ",\"startTimeUnixNano\":\"";
  put_number(out, s.start_ns);
  out += "\",\"endTimeUnixNano\":\"";
  put_number(out, s.end_ns);
  out += "\",";
  put_attributes(s, out);
  // A server span's 4xx is the client's mistake, not an error of the span (OpenTelemetry's
  // HTTP conventions); a client span's failure without any response is one.
  const bool error = s.status >= 500 || (s.kind == SpanKind::kClient && s.status == 0) ||
                     !s.get(T::kError).empty();
  out += error ? ",\"status\":{\"code\":2}}" : ",\"status\":{}}";
}

}  // namespace

void append_export_request(std::span<const SpanRecord> spans, std::string_view service,
                           std::string& out) {
  out += "{\"resourceSpans\":[{\"resource\":{";
  {
    Attributes a(out);
    a.text("service.name", service);
  }
  out += "},\"scopeSpans\":[{\"scope\":{\"name\":\"usher\",\"version\":";
  put_string(out, kVersion);
  out += "},\"spans\":[";
  for (size_t i = 0; i < spans.size(); ++i) {
    if (i) out += ',';
    put_span(spans[i], out);
  }
  out += "]}]}]}";
}

namespace {

using Clock = std::chrono::steady_clock;

int remaining_ms(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return static_cast<int>(std::max<int64_t>(left.count(), 0));
}

// Waits for `events` on `fd` until the deadline: false on timeout or error.
bool wait_for(int fd, short events, Clock::time_point deadline) {
  while (true) {
    pollfd p{fd, events, 0};
    const int n = ::poll(&p, 1, remaining_ms(deadline));
    if (n > 0) return true;
    if (n == 0 || errno != EINTR) return false;
  }
}

bool send_all(int fd, std::string_view bytes, Clock::time_point deadline) {
  while (!bytes.empty()) {
    const ssize_t n = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n > 0) {
      bytes.remove_prefix(static_cast<size_t>(n));
    } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      if (!wait_for(fd, POLLOUT, deadline)) return false;
    } else {
      return false;
    }
  }
  return true;
}

// The response's status code from its first line, once that arrived; 0 if it never did.
int read_status(int fd, Clock::time_point deadline) {
  char head[256];
  size_t have = 0;
  while (have < sizeof head) {
    const ssize_t n = ::recv(fd, head + have, sizeof head - have, 0);
    if (n > 0) {
      have += static_cast<size_t>(n);
      const std::string_view text(head, have);
      if (text.size() >= 12 && text.find('\n') != std::string_view::npos) break;
    } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      if (!wait_for(fd, POLLIN, deadline)) return -1;
    } else {
      break;
    }
  }
  // "HTTP/1.1 200 OK"
  const std::string_view line(head, have);
  if (!line.starts_with("HTTP/1.") || line.size() < 12 || line[8] != ' ') return 0;
  int status = 0;
  std::from_chars(line.data() + 9, line.data() + 12, status);
  return status;
}

}  // namespace

CollectorConnection::~CollectorConnection() {
  if (fd_ >= 0) ::close(fd_);
}

PostResult CollectorConnection::open(const Collector& collector, Clock::time_point deadline) {
  fd_ = ::socket(collector.address.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd_ < 0) return PostResult::kUnreachable;
  if (::connect(fd_, collector.address.sockaddr_ptr(), collector.address.length()) == 0) {
    return PostResult::kSent;
  }
  if (errno != EINPROGRESS) return PostResult::kUnreachable;
  if (!wait_for(fd_, POLLOUT, deadline)) return PostResult::kTimedOut;
  int error = 0;
  socklen_t length = sizeof error;
  ::getsockopt(fd_, SOL_SOCKET, SO_ERROR, &error, &length);
  return error == 0 ? PostResult::kSent : PostResult::kUnreachable;
}

PostResult CollectorConnection::post(const Collector& collector, std::string_view body,
                                     Clock::time_point deadline) {
  const std::string head =
      "POST " + collector.path + " HTTP/1.1\r\nHost: " + collector.authority +
      "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
      "\r\nConnection: close\r\n\r\n";
  if (!send_all(fd_, head, deadline) || !send_all(fd_, body, deadline)) {
    return Clock::now() >= deadline ? PostResult::kTimedOut : PostResult::kUnreachable;
  }
  const int status = read_status(fd_, deadline);
  if (status < 0) return PostResult::kTimedOut;
  return status >= 200 && status < 300 ? PostResult::kSent : PostResult::kRefused;
}

}  // namespace usher::trace
