// What is read at all and the document's shape: duplicate keys, nesting, control characters, empty
// files and files that are no regular file or too large, each at FILE:LINE:COL on one line.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "config/config.h"
#include "config/reader.h"

namespace usher::config {
namespace {

using Messages = std::vector<std::string>;
using namespace std::string_literals;

Messages errors_of(const std::string& yaml) {
  Errors errors;
  load_string(yaml, "usher.yaml", errors);
  return errors.messages;
}

const std::string kValid =
    "listeners:\n  - listen: 127.0.0.1:80\n    pool: p\npools:\n  - name: p\n    backends: "
    "[127.0.0.1:1]\n";

TEST(DuplicateKeys, AtTheTopLevel) {
  EXPECT_EQ(errors_of("workers: 1\nworkers: 2\n" + kValid),
            Messages{"usher.yaml:2:1: duplicate key 'workers' (first at 1:1)"});
  EXPECT_EQ(errors_of(kValid + "pools: []\n"),
            Messages{"usher.yaml:7:1: duplicate key 'pools' (first at 4:1)"});
}

TEST(DuplicateKeys, AtAnyDepth) {
  const std::string yaml = R"(listeners:
  - listen: 127.0.0.1:80
    routes:
      - match: { path_prefix: /a, path_prefix: /b }
        pool: p
        request_headers: { set: { X-A: "1", X-A: "2" } }
    pool: p
pools:
  - name: p
    name: q
    backends:
      - { address: 127.0.0.1:1, weight: 2, weight: 3 }
    timeouts: { connect: 1s, connect: 2s }
    health: { path: /a, interval: 1s, interval: 2s }
)";
  EXPECT_EQ(errors_of(yaml),
            (Messages{"usher.yaml:4:35: duplicate key 'path_prefix' (first at 4:18)",
                      "usher.yaml:6:45: duplicate key 'X-A' (first at 6:35)",
                      "usher.yaml:10:5: duplicate key 'name' (first at 9:5)",
                      "usher.yaml:12:44: duplicate key 'weight' (first at 12:33)",
                      "usher.yaml:13:30: duplicate key 'connect' (first at 13:17)",
                      "usher.yaml:14:39: duplicate key 'interval' (first at 14:25)"}));
}

TEST(DuplicateKeys, EqualKeysInDifferentMappingsAreFine) {
  const std::string yaml = kValid + "  - name: q\n    backends: [127.0.0.1:2]\n";
  EXPECT_EQ(errors_of(yaml), Messages{});
}

TEST(Document, NestingDeeperThanTheLimitSaysWhere) {
  const std::string deep = std::string(20'000, '[') + std::string(20'000, ']') + "\n";
  EXPECT_EQ(errors_of(deep), Messages{"usher.yaml:1:101: nesting deeper than 100 levels"});
  std::string block = "a:\n";
  for (int i = 1; i <= 150; ++i) block += std::string(i, ' ') + "a:\n";
  EXPECT_EQ(errors_of(block), Messages{"usher.yaml:101:101: nesting deeper than 100 levels"});
  const std::string within = std::string(100, '[') + std::string(100, ']') + "\n";
  EXPECT_EQ(errors_of(within), Messages{"usher.yaml:1:1: the configuration must be a mapping"});
}

TEST(Document, AControlCharacterIsRefusedAtItsPositionOnOneLine) {
  EXPECT_EQ(errors_of("workers: 1\x00\nx: 2\n"s),
            Messages{"usher.yaml:1:11: control character '\\x00': YAML allows only tab, line feed "
                     "and carriage return (a double-quoted string can hold others as escapes)"});
  EXPECT_EQ(errors_of("workers: 1\n  # \x1b[31m\n")[0].substr(0, 45),
            "usher.yaml:2:5: control character '\\x1b': YAM");
}

TEST(Document, EscapedControlCharactersInValuesAreEchoedEscaped) {
  EXPECT_EQ(errors_of("io_backend: \"ep\\noll\\u0000\"\n" + kValid),
            Messages{"usher.yaml:1:13: io_backend must be auto, io_uring or epoll, not "
                     "'ep\\noll\\x00'"});
}

TEST(Document, ASecondDocumentIsAnErrorNotIgnored) {
  EXPECT_EQ(
      errors_of(kValid + "---\nworkers: 2\n"),
      Messages{"usher.yaml:" + std::to_string(std::count(kValid.begin(), kValid.end(), '\n') + 1) +
               ":1: a second YAML document: the file must hold one ('---' starts another)"});
  EXPECT_EQ(errors_of("---\n" + kValid), Messages{});  // one document, its start marked
  EXPECT_EQ(errors_of(kValid + "...\n"), Messages{});  // one document, its end marked
}

TEST(Document, AnEmptyFileSaysItIsEmpty) {
  for (const char* text : {"", "\n", "# only a comment\n", "~\n"}) {
    EXPECT_EQ(errors_of(text), Messages{"usher.yaml:1:1: the configuration is empty"}) << text;
  }
}

TEST(Messages, NumbersNameTheRangeThatIsAccepted) {
  const std::string pool =
      "listeners: []\npools:\n  - name: p\n    backends:\n      - { address: "
      "127.0.0.1:1, weight: ";
  for (const char* weight : {"heavy", "0", "1001"}) {
    EXPECT_EQ(errors_of(pool + weight + " }\n"),
              Messages{"usher.yaml:5:41: weight must be a whole number from 1 to 1000, not '" +
                       std::string(weight) + "'"});
  }
  EXPECT_EQ(errors_of(pool + "1000 }\n"), Messages{});
  EXPECT_EQ(errors_of("listeners: []\npools:\n  - name: p\n    backends: [127.0.0.1:1]\n    "
                      "health: { rise: 0 }\n"),
            Messages{"usher.yaml:5:21: rise must be a whole number from 1 to 100, not '0'"});
  EXPECT_EQ(errors_of("listeners: []\npools:\n  - name: p\n    backends: [127.0.0.1:1]\n    "
                      "retries: { attempts: 0, statuses: [404] }\n"),
            (Messages{"usher.yaml:5:26: attempts must be a whole number from 1 to 10, not '0'",
                      "usher.yaml:5:40: a retried status must be a whole number from 500 to 599, "
                      "not '404'"}));
  const std::string route = "listeners:\n  - listen: 127.0.0.1:80\n    routes:\n      - ";
  EXPECT_EQ(errors_of(route + "respond: { status: 100 }\npools: []\n"),
            Messages{"usher.yaml:4:28: respond status must be a whole number from 200 to 599, not "
                     "'100'"});
  EXPECT_EQ(errors_of(route + "redirect: { status: 304 }\npools: []\n"),
            Messages{"usher.yaml:4:29: redirect status must be 301, 302, 303, 307 or 308, not "
                     "'304'"});
  EXPECT_EQ(weight_problem(0), "weight must be a whole number from 1 to 1000");
}

TEST(Errors, ControlCharactersAreEscaped) {
  Errors errors;
  errors.add("a\tb\r\nc\x01\x7f\\d \xc3\xa9"s);
  EXPECT_EQ(errors.messages, Messages{"a\\tb\\r\\nc\\x01\\x7f\\d \xc3\xa9"});
}

class Files : public testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/usher-document-XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  Messages read(const std::string& path) {
    Errors errors;
    EXPECT_FALSE(read_file(path, errors).has_value());
    return errors.messages;
  }

  std::string dir_;
};

TEST_F(Files, OnlyARegularFileIsRead) {
  EXPECT_EQ(read(dir_), Messages{dir_ + ":1:1: is a directory, not a regular file"});
  EXPECT_EQ(read("/dev/zero"),
            Messages{"/dev/zero:1:1: is a character device, not a regular file"});
  const std::string fifo = dir_ + "/fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  EXPECT_EQ(read(fifo), Messages{fifo + ":1:1: is a FIFO, not a regular file"});
  EXPECT_EQ(read(dir_ + "/missing"),
            Messages{dir_ + "/missing:1:1: cannot open file: No such file or directory"});
}

TEST_F(Files, AFileOverTheLimitIsNotRead) {
  const std::string path = dir_ + "/big.yaml";
  std::ofstream(path).close();
  ASSERT_EQ(::truncate(path.c_str(), kMaxFileBytes + 1), 0);
  EXPECT_EQ(read(path), Messages{path + ":1:1: is 16777217 bytes, over the limit of 16 MiB "
                                        "(16777216 bytes)"});
  ASSERT_EQ(::truncate(path.c_str(), kMaxFileBytes), 0);
  Errors errors;
  auto text = read_file(path, errors);
  ASSERT_TRUE(text.has_value());
  EXPECT_EQ(text->size(), kMaxFileBytes);
}

}  // namespace
}  // namespace usher::config
