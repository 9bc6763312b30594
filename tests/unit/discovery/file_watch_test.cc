#include "discovery/file_watch.h"

#include <gtest/gtest.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

namespace usher::discovery {
namespace {

namespace fs = std::filesystem;

class FileWatchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char name[] = "/tmp/usher-watch-XXXXXX";
    ASSERT_NE(::mkdtemp(name), nullptr);
    folder_ = name;
  }
  void TearDown() override { fs::remove_all(folder_); }

  std::string path(const std::string& name) const { return (fs::path(folder_) / name).string(); }
  static void write(const std::string& file, const std::string& text) {
    std::ofstream(file) << text;
  }
  // Whether the count reached `at_least` within a second.
  static bool reaches(const std::atomic<int>& count, int at_least) {
    for (int i = 0; i < 100 && count.load() < at_least; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return count.load() >= at_least;
  }

  std::string folder_;
};

TEST_F(FileWatchTest, ARenameIntoPlaceAndAWriteAreSeenAnotherFileIsNot) {
  std::atomic<int> changes{0};
  FileWatch watch([&] { ++changes; });
  EXPECT_EQ(watch.watch({path("backends.yaml")}), "");
  write(path("other.yaml"), "x");  // not watched: nothing
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(changes.load(), 0);
  write(path(".backends.yaml.new"), "- 127.0.0.1:1\n");
  EXPECT_EQ(changes.load(), 0);  // the staged name is not the watched one
  fs::rename(path(".backends.yaml.new"), path("backends.yaml"));
  ASSERT_TRUE(reaches(changes, 1));
  const int after_rename = changes.load();
  write(path("backends.yaml"), "- 127.0.0.1:2\n");  // written in place and closed
  EXPECT_TRUE(reaches(changes, after_rename + 1));
}

TEST_F(FileWatchTest, AFileNoLongerWatchedIsNotSeen) {
  std::atomic<int> changes{0};
  FileWatch watch([&] { ++changes; });
  EXPECT_EQ(watch.watch({path("a.yaml")}), "");
  fs::create_directory(path("sub"));
  EXPECT_EQ(watch.watch({path("sub/b.yaml")}), "");  // a.yaml's directory is dropped
  write(path("a.yaml"), "x");
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(changes.load(), 0);
  write(path("sub/b.yaml"), "x");
  EXPECT_TRUE(reaches(changes, 1));
}

TEST_F(FileWatchTest, AMissingDirectoryIsSaidAndTheOthersAreWatched) {
  std::atomic<int> changes{0};
  FileWatch watch([&] { ++changes; });
  const std::string error = watch.watch({path("gone/x.yaml"), path("y.yaml")});
  EXPECT_NE(error.find("cannot watch " + path("gone")), std::string::npos) << error;
  write(path("y.yaml"), "x");
  EXPECT_TRUE(reaches(changes, 1));
}

}  // namespace
}  // namespace usher::discovery
