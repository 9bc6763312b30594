// The file keepalived's track_file reads: written whole, when the state changes and every second.
#include "cluster/health_file.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <sstream>

namespace usher::cluster {
namespace {

std::string read(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

TEST(HealthFile, WritesZeroWhenFitOneWhenNotOnChangeAndEverySecond) {
  const std::string folder = testing::TempDir() + "usher-health-file";
  std::filesystem::create_directories(folder);
  const std::string path = folder + "/health";
  HealthFile file;
  EXPECT_EQ(file.update(true, 0), "");  // no path: nothing written
  EXPECT_FALSE(std::filesystem::exists(path));
  EXPECT_EQ(file.set_path(path), "");
  EXPECT_EQ(file.update(true, 0), "");
  EXPECT_EQ(read(path), "0\n");
  // Another process wrote it (a predecessor stopping): put right within a second, not sooner.
  std::filesystem::remove(path);
  EXPECT_EQ(file.update(true, 999), "");
  EXPECT_FALSE(std::filesystem::exists(path));
  EXPECT_EQ(file.update(true, 1000), "");
  EXPECT_EQ(read(path), "0\n");
  EXPECT_EQ(file.update(false, 1001), "");  // a change: at once
  EXPECT_EQ(read(path), "1\n");
  size_t files = 0;
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator(folder)) ++files;
  EXPECT_EQ(files, 1u);  // no temporary file left behind
  std::filesystem::remove_all(folder);
}

TEST(HealthFile, AFileNoLongerNamedIsLeftSayingUnfit) {
  const std::string folder = testing::TempDir() + "usher-health-file-moved";
  std::filesystem::create_directories(folder);
  HealthFile file;
  file.set_path(folder + "/old");
  file.update(true, 0);
  EXPECT_EQ(file.set_path(folder + "/new"), "");
  EXPECT_EQ(read(folder + "/old"), "1\n");
  file.update(true, 1);
  EXPECT_EQ(read(folder + "/new"), "0\n");
  std::filesystem::remove_all(folder);
}

TEST(HealthFile, AFolderThatIsGoneIsAnErrorNamingThePath) {
  HealthFile file;
  file.set_path("/nonexistent-usher-folder/health");
  const std::string error = file.update(true, 0);
  EXPECT_NE(error.find("/nonexistent-usher-folder/health"), std::string::npos) << error;
}

}  // namespace
}  // namespace usher::cluster
