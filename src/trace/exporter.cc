#include "trace/exporter.h"

#include <spdlog/spdlog.h>

namespace usher::trace {

namespace {

using Clock = std::chrono::steady_clock;

std::optional<Collector> collector_of(const std::optional<config::Tracing>& tracing) {
  if (!tracing) return std::nullopt;
  return Collector{tracing->collector, tracing->authority, tracing->path};
}

const char* describe(PostResult result) {
  switch (result) {
    case PostResult::kSent:
      return "sent";
    case PostResult::kUnreachable:
      return "could not connect or the connection failed";
    case PostResult::kTimedOut:
      return "no answer within the timeout";
    case PostResult::kRefused:
      return "answered with an error status";
  }
  return "";
}

}  // namespace

Exporter::Exporter(const std::optional<config::Tracing>& tracing, unsigned workers)
    : last_server_(workers), collector_(collector_of(tracing)) {
  for (unsigned i = 0; i < workers; ++i) channels_.push_back(std::make_unique<Channel>());
}

Exporter::~Exporter() {
  stop();
}

void Exporter::start() {
  batch_.reserve(kBatch);
  thread_ = std::thread([this] { run(); });
}

void Exporter::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Exporter::retarget(const std::optional<config::Tracing>& next) {
  {
    std::lock_guard lock(mutex_);
    next_collector_ = collector_of(next);
    retargeted_ = true;
  }
  wake_.notify_all();
}

uint64_t Exporter::dropped() const {
  uint64_t total = dropped_.load(std::memory_order_relaxed);
  for (const auto& channel : channels_) total += channel->dropped();
  return total;
}

// Takes what the workers committed: into the batch, or dropped while the collector failed
// lately (or there is none).
void Exporter::collect(Clock::time_point now) {
  for (size_t i = 0; i < channels_.size(); ++i) {
    Channel* channel = channels_[i].get();
    if (!collector_ || now < quiet_until_) {
      const size_t n = channel->drain(Channel::kSlots, [](const SpanRecord&) {});
      dropped_.fetch_add(n, std::memory_order_relaxed);
      continue;
    }
    while (true) {
      if (batch_.empty()) batch_started_ = now;
      SpanRecord& server = last_server_[i];
      const size_t n = channel->drain(kBatch - batch_.size(), [&](const SpanRecord& s) {
        batch_.push_back(s);
        if (s.kind == SpanKind::kServer) {
          server = s;
        } else {
          batch_.back().copy_texts(server);
        }
      });
      if (batch_.size() < kBatch) break;
      send_batch(now);
      if (n == 0 || now < quiet_until_) break;
    }
  }
}

void Exporter::send_batch(Clock::time_point now) {
  if (batch_.empty()) return;
  const Clock::time_point deadline = Clock::now() + std::chrono::milliseconds(kTimeoutMs);
  CollectorConnection connection;
  PostResult result = connection.open(*collector_, deadline);
  if (result == PostResult::kSent) {
    body_.clear();
    append_export_request(batch_, "usher", body_);
    result = connection.post(*collector_, body_, deadline);
  }
  if (result == PostResult::kSent) {
    exported_.fetch_add(batch_.size(), std::memory_order_relaxed);
  } else {
    failures_.fetch_add(1, std::memory_order_relaxed);
    if (warned_at_ == Clock::time_point{} || now - warned_at_ >= std::chrono::minutes(1)) {
      warned_at_ = now;
      spdlog::warn(
          "tracing: export to {} failed ({}): {} spans dropped; spans are dropped for "
          "{} s after each failure (logged once a minute at most)",
          collector_->authority, describe(result), batch_.size(),
          std::chrono::duration_cast<std::chrono::seconds>(kBackoff).count());
    }
    dropped_.fetch_add(batch_.size(), std::memory_order_relaxed);
    quiet_until_ = Clock::now() + kBackoff;
  }
  batch_.clear();
}

void Exporter::run() {
  bool stopping = false;
  while (!stopping) {
    {
      std::unique_lock lock(mutex_);
      // Without a collector no span is made (a generation traces only once retarget() named
      // one), so an untraced process does not wake every kPoll.
      if (collector_) {
        wake_.wait_for(lock, kPoll, [this] { return stopping_; });
      } else {
        wake_.wait(lock, [this] { return stopping_ || retargeted_; });
      }
      stopping = stopping_;
      if (retargeted_) {
        retargeted_ = false;
        // Spans batched for the old collector go to the new one: they are this process's.
        collector_ = std::move(next_collector_);
        quiet_until_ = {};
      }
    }
    const Clock::time_point now = Clock::now();
    collect(now);
    if (!batch_.empty() && (stopping || now - batch_started_ >= kBatchAge)) {
      if (collector_) {
        send_batch(now);
      } else {
        dropped_.fetch_add(batch_.size(), std::memory_order_relaxed);
        batch_.clear();
      }
    }
  }
}

}  // namespace usher::trace
