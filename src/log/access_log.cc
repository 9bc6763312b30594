#include "log/access_log.h"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <ctime>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace usher::log {

namespace {

using namespace std::chrono_literals;

bool json_plain(unsigned char c) {
  return c >= 0x20 && c < 0x7f && c != '"' && c != '\\';
}

// JSON string contents: quotes, backslashes and control bytes escaped; bytes above 0x7f are
// escaped as Latin-1 code points, so that any header bytes still make valid UTF-8 JSON.
void json_string(std::string& out, std::string_view s) {
  constexpr char kHex[] = "0123456789abcdef";
  out += '"';
  // Nearly every value needs no escape: append the plain run at once.
  const auto plain = std::find_if_not(
      s.begin(), s.end(), [](char c) { return json_plain(static_cast<unsigned char>(c)); });
  out.append(s.begin(), plain);
  for (unsigned char c : s.substr(static_cast<size_t>(plain - s.begin()))) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20 || c >= 0x7f) {
      out += "\\u00";
      out += kHex[c >> 4];
      out += kHex[c & 0xf];
    } else {
      out += static_cast<char>(c);
    }
  }
  out += '"';
}

// nginx escapes '"', '\' and non-printable bytes in combined logs as \xHH.
void combined_string(std::string& out, std::string_view s) {
  constexpr char kHex[] = "0123456789ABCDEF";
  if (s.empty()) {
    out += '-';
    return;
  }
  for (unsigned char c : s) {
    if (c == '"' || c == '\\' || c < 0x20 || c >= 0x7f) {
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 0xf];
    } else {
      out += static_cast<char>(c);
    }
  }
}

void append_number(std::string& out, uint64_t value) {
  char digits[20];
  out.append(digits, std::to_chars(digits, digits + sizeof digits, value).ptr);
}

// Milliseconds with three decimals ("12.346"), from seconds.
void append_millis(std::string& out, double seconds) {
  const auto micros = static_cast<uint64_t>(std::llround(std::max(seconds, 0.0) * 1e6));
  append_number(out, micros / 1000);
  const auto fraction = static_cast<unsigned>(micros % 1000);
  const char decimals[4] = {'.', static_cast<char>('0' + fraction / 100),
                            static_cast<char>('0' + fraction / 10 % 10),
                            static_cast<char>('0' + fraction % 10)};
  out.append(decimals, sizeof decimals);
}

void json_line(const RequestRecord& r, int64_t millis, const SecondText& clock, std::string& out) {
  out += R"({"time":")";
  out += clock.iso;
  const auto fraction = static_cast<unsigned>(millis % 1000);
  const char decimals[6] = {'.',
                            static_cast<char>('0' + fraction / 100),
                            static_cast<char>('0' + fraction / 10 % 10),
                            static_cast<char>('0' + fraction % 10),
                            'Z',
                            '"'};
  out.append(decimals, sizeof decimals);
  auto text = [&out](std::string_view key, std::string_view value) {
    out += key;
    json_string(out, value);
  };
  text(R"(,"client":)", r.client);
  text(R"(,"method":)", r.method);
  text(R"(,"host":)", r.host);
  text(R"(,"path":)", r.target);
  auto number = [&out](std::string_view key, uint64_t value) {
    out += key;
    append_number(out, value);
  };
  number(R"(,"status":)", static_cast<uint64_t>(r.status));
  number(R"(,"bytes_sent":)", r.bytes_sent);
  number(R"(,"bytes_received":)", r.bytes_received);
  out += R"(,"duration_ms":)";
  append_millis(out, r.duration_seconds);
  out += R"(,"upstream_ms":)";
  if (r.upstream_seconds >= 0) {
    append_millis(out, r.upstream_seconds);
  } else {
    out += "null";
  }
  text(R"(,"listener":)", r.listener);
  text(R"(,"route":)", r.route);
  text(R"(,"pool":)", r.pool);
  text(R"(,"backend":)", r.backend);
  number(R"(,"retries":)", r.retries);
  text(R"(,"request_id":)", r.request_id);
  text(R"(,"user_agent":)", r.user_agent);
  out += "}\n";
}

void combined_line(const RequestRecord& r, const SecondText& clock, std::string& out) {
  auto it = std::back_inserter(out);
  combined_string(out, r.client);
  fmt::format_to(it, " - - [{}] \"", clock.combined);
  combined_string(out, r.method);
  out += ' ';
  combined_string(out, r.target);
  fmt::format_to(it, " HTTP/1.{}\" {} {} \"", r.version_minor, r.status, r.bytes_sent);
  combined_string(out, r.referer);
  out += "\" \"";
  combined_string(out, r.user_agent);
  out += "\"\n";
}

void update(SecondText& clock, int64_t second) {
  static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  const auto seconds = static_cast<std::time_t>(second);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  fmt::format_to_n(clock.iso, sizeof clock.iso - 1, "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
                   tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
  fmt::format_to_n(clock.combined, sizeof clock.combined - 1,
                   "{:02}/{}/{:04}:{:02}:{:02}:{:02} +0000", tm.tm_mday, kMonths[tm.tm_mon],
                   tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
  clock.second = second;
}

}  // namespace

void format_line(config::AccessLog::Format format, const RequestRecord& record,
                 std::chrono::system_clock::time_point now, SecondText& clock, std::string& out) {
  const int64_t millis =
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
  if (millis / 1000 != clock.second) update(clock, millis / 1000);
  if (format == config::AccessLog::Format::kJson) {
    json_line(record, millis, clock, out);
  } else {
    combined_line(record, clock, out);
  }
}

Channel::Channel(config::AccessLog::Format format) : format_(format) {
  current_.reserve(kBufferBytes + 4096);
  for (std::string& slot : slots_) slot.reserve(kBufferBytes + 4096);
}

void Channel::append(const RequestRecord& record) {
  const auto now = std::chrono::system_clock::now();
  if (current_lines_ == 0) oldest_ = now;
  format_line(format_, record, now, clock_, current_);
  ++current_lines_;
  lines_.store(lines_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  if (current_.size() >= kBufferBytes || now - oldest_ >= 100ms) flush();
}

// Hands the buffer over when a slot is free; otherwise the writer is behind and the lines go.
void Channel::flush() {
  if (current_.empty()) return;
  const uint64_t tail = tail_.load(std::memory_order_relaxed);
  if (tail - head_.load(std::memory_order_acquire) < kSlots) {
    std::swap(current_, slots_[tail % kSlots]);
    tail_.store(tail + 1, std::memory_order_release);
  } else {
    dropped_.store(dropped_.load(std::memory_order_relaxed) + current_lines_,
                   std::memory_order_relaxed);
  }
  current_.clear();
  current_lines_ = 0;
}

AccessLog::AccessLog(const config::AccessLog& config, unsigned workers) : config_(config) {
  for (unsigned i = 0; i < workers; ++i)
    channels_.push_back(std::make_unique<Channel>(config.format));
}

AccessLog::~AccessLog() {
  stop();
  if (fd_ > STDOUT_FILENO) ::close(fd_);
}

void AccessLog::start() {
  thread_ = std::thread([this] { run(); });
}

void AccessLog::stop() {
  if (!thread_.joinable()) return;
  stopping_.store(true, std::memory_order_relaxed);
  thread_.join();
}

uint64_t AccessLog::lines() const {
  uint64_t total = 0;
  for (const auto& c : channels_) total += c->lines();
  return total;
}

uint64_t AccessLog::dropped() const {
  uint64_t total = refused_lines_.load(std::memory_order_relaxed);
  for (const auto& c : channels_) total += c->dropped();
  return total;
}

// Non-blocking, so that a FIFO without a reader or a full pipe never holds the writer past a
// stop; a regular file on a slow disk blocks only this thread.
bool AccessLog::open_file() {
  if (config_.target == config::AccessLog::Target::kStdout) {
    fd_ = STDOUT_FILENO;
    return true;
  }
  int fd =
      ::open(config_.path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NONBLOCK, 0644);
  if (fd < 0) return false;
  if (fd_ > STDOUT_FILENO) ::close(fd_);
  fd_ = fd;
  return true;
}

void AccessLog::write_out(std::string_view bytes, bool stopping) {
  while (!bytes.empty()) {
    ssize_t n = fd_ >= 0 ? ::write(fd_, bytes.data(), bytes.size()) : -1;
    if (n > 0) {
      bytes.remove_prefix(static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN && !stopping && !stopping_.load(std::memory_order_relaxed)) {
      pollfd p{fd_, POLLOUT, 0};
      ::poll(&p, 1, 100);
      continue;
    }
    // The sink refuses (no reader, disk full, stopping): count and drop the rest.
    refused_lines_.fetch_add(static_cast<uint64_t>(std::count(bytes.begin(), bytes.end(), '\n')),
                             std::memory_order_relaxed);
    return;
  }
}

void AccessLog::run() {
  bool opened = open_file();
  if (!opened) spdlog::error("access log: cannot open {}: {}", config_.path, std::strerror(errno));
  auto last_attempt = std::chrono::steady_clock::now();
  while (true) {
    const bool stopping = stopping_.load(std::memory_order_relaxed);
    if (reopen_.exchange(false, std::memory_order_relaxed) ||
        (!opened && std::chrono::steady_clock::now() - last_attempt > 1s)) {
      opened = open_file();
      last_attempt = std::chrono::steady_clock::now();
    }
    bool any = false;
    for (auto& channel : channels_) {
      any |= channel->drain([&](std::string_view bytes) { write_out(bytes, stopping); });
    }
    if (stopping) break;
    if (!any) std::this_thread::sleep_for(20ms);
  }
}

}  // namespace usher::log
