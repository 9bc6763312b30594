#include "discovery/queue.h"

namespace usher::discovery {

Queue::Queue(std::function<void(Batch)> apply)
    : apply_(std::move(apply)), thread_([this] { run(); }) {}

Queue::~Queue() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  wake_.notify_one();
  thread_.join();
}

void Queue::files_changed() {
  {
    std::lock_guard lock(mutex_);
    pending_.files = true;
  }
  wake_.notify_one();
}

void Queue::answered(const std::string& pool, std::vector<config::Backend> backends) {
  {
    std::lock_guard lock(mutex_);
    pending_.answers[pool] = std::move(backends);
  }
  wake_.notify_one();
}

void Queue::run() {
  while (true) {
    Batch batch;
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [&] { return stop_ || pending_.files || !pending_.answers.empty(); });
      if (stop_) return;
      batch = std::exchange(pending_, Batch{});
    }
    apply_(std::move(batch));
  }
}

}  // namespace usher::discovery
