#include "trace/otlp.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
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

// A JSON string: quotes, backslashes and control bytes escaped; bytes above 0x7f as Latin-1
// code points, so that any request bytes still make valid UTF-8.
void put_string(std::string& out, std::string_view s) {
  constexpr char kHex[] = "0123456789abcdef";
  out += '"';
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += ch;
    } else if (c < 0x20 || c >= 0x7f) {
      out += "\\u00";
      out += kHex[c >> 4];
      out += kHex[c & 0xf];
    } else {
      out += ch;
    }
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
    // The backend as "host:port" or "[v6]:port": OpenTelemetry names the two parts apart.
    const std::string_view backend = s.get(T::kBackend);
    const size_t colon = backend.rfind(':');
    std::string_view host = backend.substr(0, colon);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
      host = host.substr(1, host.size() - 2);
    }
    a.text("server.address", host);
    uint64_t port = 0;
    if (colon != std::string_view::npos) {
      const std::string_view digits = backend.substr(colon + 1);
      std::from_chars(digits.data(), digits.data() + digits.size(), port);
    }
    if (port) a.number("server.port", port);
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

class Connection {
 public:
  explicit Connection(int fd) : fd_(fd) {}
  ~Connection() {
    if (fd_ >= 0) ::close(fd_);
  }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  int fd() const { return fd_; }

 private:
  int fd_;
};

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

PostResult post_json(const Collector& collector, std::string_view body, int timeout_ms) {
  const Clock::time_point deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  const Connection c(
      ::socket(collector.address.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (c.fd() < 0) return PostResult::kUnreachable;
  if (::connect(c.fd(), collector.address.sockaddr_ptr(), collector.address.length()) != 0) {
    if (errno != EINPROGRESS) return PostResult::kUnreachable;
    if (!wait_for(c.fd(), POLLOUT, deadline)) return PostResult::kTimedOut;
    int error = 0;
    socklen_t length = sizeof error;
    ::getsockopt(c.fd(), SOL_SOCKET, SO_ERROR, &error, &length);
    if (error != 0) return PostResult::kUnreachable;
  }
  std::string head =
      "POST " + collector.path + " HTTP/1.1\r\nHost: " + collector.authority +
      "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
      "\r\nConnection: close\r\n\r\n";
  if (!send_all(c.fd(), head, deadline) || !send_all(c.fd(), body, deadline)) {
    return Clock::now() >= deadline ? PostResult::kTimedOut : PostResult::kUnreachable;
  }
  const int status = read_status(c.fd(), deadline);
  if (status < 0) return PostResult::kTimedOut;
  return status >= 200 && status < 300 ? PostResult::kSent : PostResult::kRefused;
}

}  // namespace usher::trace
