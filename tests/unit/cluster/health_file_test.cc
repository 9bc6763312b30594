// The file keepalived's track_file reads: written whole, and only when the state changes.
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

TEST(HealthFile, WritesZeroWhenFitOneWhenNotAndOnlyOnChange) {
  const std::string folder = testing::TempDir() + "usher-health-file";
  std::filesystem::create_directories(folder);
  const std::string path = folder + "/health";
  HealthFile file;
  EXPECT_EQ(file.update(true), "");  // no path: nothing written
  EXPECT_FALSE(std::filesystem::exists(path));
  file.set_path(path);
  EXPECT_EQ(file.update(true), "");
  EXPECT_EQ(read(path), "0\n");
  std::filesystem::remove(path);
  EXPECT_EQ(file.update(true), "");  // unchanged: not written again
  EXPECT_FALSE(std::filesystem::exists(path));
  EXPECT_EQ(file.update(false), "");
  EXPECT_EQ(read(path), "1\n");
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
  std::filesystem::remove_all(folder);
}

TEST(HealthFile, AFolderThatIsGoneIsAnErrorNamingThePath) {
  HealthFile file;
  file.set_path("/nonexistent-usher-folder/health");
  const std::string error = file.update(true);
  EXPECT_NE(error.find("/nonexistent-usher-folder/health"), std::string::npos) << error;
}

}  // namespace
}  // namespace usher::cluster
