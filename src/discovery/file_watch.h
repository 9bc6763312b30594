#pragma once
// Watches a set of files and calls `changed` on its own thread when one of them was written and
// closed, or renamed into place (how an autoscaler replaces a list without a reader ever seeing
// half of it). inotify watches each file's directory: a watch on the file itself would follow
// the inode that a rename just replaced.
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace usher::discovery {

class FileWatch {
 public:
  explicit FileWatch(std::function<void()> changed);
  ~FileWatch();  // stops and joins the thread
  FileWatch(const FileWatch&) = delete;
  FileWatch& operator=(const FileWatch&) = delete;

  // The files to watch from now on (any thread); an error names a directory that cannot be
  // watched, the others are watched all the same.
  std::string watch(const std::vector<std::string>& files);

 private:
  void run();
  bool matches(int watch, const char* name);

  std::function<void()> changed_;
  int inotify_ = -1;
  int stop_ = -1;  // an eventfd: written once by the destructor
  int error_ = 0;  // why either descriptor is missing (then no thread runs)
  std::mutex mutex_;
  std::map<std::string, int> watches_;          // directory -> watch descriptor, under mutex_
  std::map<int, std::set<std::string>> names_;  // watch descriptor -> file names, under mutex_
  std::thread thread_;
};

}  // namespace usher::discovery
