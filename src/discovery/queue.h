#pragma once
// What the watches found (a discovery file written, a DNS name's new answer), handed to a thread
// of its own that applies one batch at a time. A watch only queues: it never waits for whatever
// the apply step locks, so that step may replace a watch, and join its thread, under that lock.
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "config/config.h"

namespace usher::discovery {

class Queue {
 public:
  struct Batch {
    bool files = false;                                           // re-read every list
    std::map<std::string, std::vector<config::Backend>> answers;  // by pool: its new backends
  };

  explicit Queue(std::function<void(Batch)> apply);
  ~Queue();  // a batch under way is applied first, then the thread is joined
  Queue(const Queue&) = delete;
  Queue& operator=(const Queue&) = delete;

  void files_changed();
  void answered(const std::string& pool, std::vector<config::Backend> backends);

 private:
  void run();

  std::function<void(Batch)> apply_;
  std::mutex mutex_;
  std::condition_variable wake_;
  Batch pending_;      // under mutex_; a later answer for a pool replaces an earlier one
  bool stop_ = false;  // under mutex_
  std::thread thread_;
};

}  // namespace usher::discovery
