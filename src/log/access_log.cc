#include "log/access_log.h"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <ctime>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "log/line_writer.h"

namespace usher::log {

namespace {

using namespace std::chrono_literals;

void json_line(const RequestRecord& r, int64_t millis, const SecondText& clock, std::string& out) {
  const std::string_view texts[] = {r.client,     r.method,     r.host,        r.target,
                                    r.listener,   r.route,      r.pool,        r.backend,
                                    r.request_id, r.user_agent, r.tls_version, r.tls_cipher,
                                    r.sni,        r.guard,      r.geo_country, r.pick};
  // Keys, punctuation, the time and six numbers take less than 512 bytes.
  size_t most = 512;
  for (std::string_view text : texts) most += LineWriter::json_bound(text.size());
  LineWriter line(out, most);
  line.put(R"({"time":")");
  line.put(clock.iso);
  line.fraction(static_cast<unsigned>(millis % 1000));
  line.put(R"(Z")");
  line.text_field(R"(,"client":)", r.client);
  line.text_field(R"(,"method":)", r.method);
  line.text_field(R"(,"host":)", r.host);
  line.text_field(R"(,"path":)", r.target);
  line.text_field(R"(,"protocol":)", r.protocol);
  line.number_field(R"(,"status":)", static_cast<uint64_t>(r.status));
  line.number_field(R"(,"bytes_sent":)", r.bytes_sent);
  line.number_field(R"(,"bytes_received":)", r.bytes_received);
  line.millis_field(R"(,"duration_ms":)", std::max(r.duration_seconds, 0.0));
  line.millis_field(R"(,"upstream_ms":)", r.upstream_seconds);
  line.text_field(R"(,"listener":)", r.listener);
  line.text_field(R"(,"route":)", r.route);
  line.text_field(R"(,"pool":)", r.pool);
  line.text_field(R"(,"backend":)", r.backend);
  line.number_field(R"(,"retries":)", r.retries);
  line.number_field(R"(,"queue_ms":)", r.queue_ms);
  if (!r.guard.empty()) line.text_field(R"(,"guard":)", r.guard);
  if (!r.pick.empty()) line.text_field(R"(,"pick":)", r.pick);
  line.text_field(R"(,"request_id":)", r.request_id);
  line.text_field(R"(,"user_agent":)", r.user_agent);
  if (r.located) line.text_field(R"(,"geo_country":)", r.geo_country);
  if (!r.tls_version.empty()) {
    line.text_field(R"(,"tls_version":)", r.tls_version);
    line.text_field(R"(,"tls_cipher":)", r.tls_cipher);
    line.text_field(R"(,"sni":)", r.sni);
  }
  line.put("}\n");
}

void combined_line(const RequestRecord& r, const SecondText& clock, std::string& out) {
  auto it = std::back_inserter(out);
  combined_string(out, r.client);
  fmt::format_to(it, " - - [{}] \"", clock.combined);
  combined_string(out, r.method);
  out += ' ';
  combined_string(out, r.target);
  fmt::format_to(it, " {}\" {} {} \"", r.protocol, r.status, r.bytes_sent);
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

Channel::Channel() {
  current_.reserve(kBufferBytes + 4096);
  for (std::string& slot : slots_) slot.reserve(kBufferBytes + 4096);
}

void Channel::append(config::AccessLog::Format format, const RequestRecord& record) {
  const auto now = std::chrono::system_clock::now();
  if (current_lines_ == 0) oldest_ = now;
  format_line(format, record, now, clock_, current_);
  appended(now);
}

void Channel::append(config::AccessLog::Format format, const ConnectionRecord& record) {
  const auto now = std::chrono::system_clock::now();
  if (current_lines_ == 0) oldest_ = now;
  const int64_t millis =
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
  if (millis / 1000 != clock_.second) update(clock_, millis / 1000);
  format_connection_line(format, record, millis, clock_, current_);
  appended(now);
}

void Channel::appended(std::chrono::system_clock::time_point now) {
  ++current_lines_;
  lines_.store(lines_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  if (current_.size() >= kBufferBytes || now - oldest_ >= kOldest) flush();
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

namespace {

bool same_target(const config::AccessLog& a, const config::AccessLog& b) {
  return a.target == b.target && (a.target != config::AccessLog::Target::kFile || a.path == b.path);
}

// Non-blocking, so that a FIFO without a reader or a full pipe never holds the writer past a
// stop; a regular file on a slow disk blocks only the writer.
int open_sink(const config::AccessLog& config) {
  switch (config.target) {
    case config::AccessLog::Target::kOff:
      return -1;
    case config::AccessLog::Target::kStdout:
      return STDOUT_FILENO;
    case config::AccessLog::Target::kFile:
      break;
  }
  return ::open(config.path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NONBLOCK, 0644);
}

void close_sink(int fd) {
  if (fd > STDOUT_FILENO) ::close(fd);
}

}  // namespace

AccessLog::AccessLog(const config::AccessLog& config, unsigned workers)
    : sink_{config}, latest_(config) {
  for (unsigned i = 0; i < workers; ++i) channels_.push_back(std::make_unique<Channel>());
}

AccessLog::~AccessLog() {
  stop();
  close_sink(sink_.fd);
  if (pending_) close_sink(pending_->fd);
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

std::string AccessLog::retarget(const config::AccessLog& next) {
  if (same_target(next, latest_)) return {};
  Sink sink{next, open_sink(next)};
  if (next.target == config::AccessLog::Target::kFile && sink.fd < 0) {
    return "access_log: cannot open " + next.path + ": " + std::strerror(errno);
  }
  latest_ = next;
  std::lock_guard lock(pending_mutex_);
  if (pending_) close_sink(pending_->fd);  // never taken: a newer target replaces it
  pending_ = std::move(sink);
  has_pending_.store(true, std::memory_order_release);
  return {};
}

// Writer thread. What the workers handed over so far was logged under the old target.
void AccessLog::take_pending() {
  drain_all(false);
  std::lock_guard lock(pending_mutex_);
  has_pending_.store(false, std::memory_order_relaxed);
  if (!pending_) return;
  close_sink(sink_.fd);
  sink_ = std::move(*pending_);
  pending_.reset();
}

bool AccessLog::open_file() {
  int fd = open_sink(sink_.config);
  if (fd < 0) return sink_.config.target == config::AccessLog::Target::kOff;
  close_sink(sink_.fd);
  sink_.fd = fd;
  return true;
}

void AccessLog::write_out(std::string_view bytes, bool stopping) {
  if (sink_.config.target == config::AccessLog::Target::kOff) return;
  while (!bytes.empty()) {
    ssize_t n = sink_.fd >= 0 ? ::write(sink_.fd, bytes.data(), bytes.size()) : -1;
    if (n > 0) {
      bytes.remove_prefix(static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN && !stopping && !stopping_.load(std::memory_order_relaxed)) {
      pollfd p{sink_.fd, POLLOUT, 0};
      ::poll(&p, 1, 100);
      continue;
    }
    // The sink refuses (no reader, disk full, stopping): count and drop the rest.
    refused_lines_.fetch_add(static_cast<uint64_t>(std::count(bytes.begin(), bytes.end(), '\n')),
                             std::memory_order_relaxed);
    return;
  }
}

bool AccessLog::drain_all(bool stopping) {
  bool any = false;
  for (auto& channel : channels_) {
    any |= channel->drain([&](std::string_view bytes) { write_out(bytes, stopping); });
  }
  return any;
}

void AccessLog::run() {
  bool opened = open_file();
  if (!opened) {
    spdlog::error("access log: cannot open {}: {}", sink_.config.path, std::strerror(errno));
  }
  auto last_attempt = std::chrono::steady_clock::now();
  while (true) {
    const bool stopping = stopping_.load(std::memory_order_relaxed);
    if (has_pending_.load(std::memory_order_acquire)) {
      take_pending();
      opened = true;
    }
    if (reopen_.exchange(false, std::memory_order_relaxed) ||
        (!opened && std::chrono::steady_clock::now() - last_attempt > 1s)) {
      opened = open_file();
      last_attempt = std::chrono::steady_clock::now();
    }
    const bool any = drain_all(stopping);
    if (stopping) break;
    if (!any) std::this_thread::sleep_for(20ms);
  }
}

}  // namespace usher::log
