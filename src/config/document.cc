// From a path to a YAML document, for configuration and scenario files alike: which files are
// read at all, and the rules yaml-cpp does not keep. It keeps the first of two equal keys and
// drops the second in silence, stops deep nesting only at 500 levels with "bad file" and a
// position past the fault, and misreads a NUL byte as an escape. Errors::add is here too: the
// file's bytes are what can put a control character into a message.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml-cpp/eventhandler.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <sstream>
#include <unordered_map>

#include "config/reader.h"

namespace usher::config {

namespace {

const char* kind_of(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISSOCK(mode)) return "a socket";
  return "a special file";
}

std::string too_large(size_t bytes) {
  return "is " + std::to_string(bytes) + " bytes, over the limit of " +
         std::to_string(kMaxFileBytes / (1024 * 1024)) + " MiB (" + std::to_string(kMaxFileBytes) +
         " bytes)";
}

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }

 private:
  int fd_;
};

// Why `path` cannot be opened: what it is when it exists but is no file (a socket refuses
// open() with ENXIO), else the system's reason.
std::string open_problem(const std::string& path, int error) {
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode)) {
    return "is " + std::string(kind_of(st.st_mode)) + ", not a regular file";
  }
  return "cannot open file: " + std::string(std::strerror(error));
}

// The first byte YAML does not allow (c-printable: tab, line feed, carriage return and no other
// C0 control, nor DEL), with its position; nullopt when there is none.
std::optional<YAML::Mark> first_control(const std::string& text) {
  YAML::Mark mark;
  for (unsigned char c : text) {
    if ((c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c == 0x7f) return mark;
    ++mark.pos;
    if (c == '\n') {
      ++mark.line;
      mark.column = 0;
    } else {
      ++mark.column;
    }
  }
  return std::nullopt;
}

// Walks the parser's events before yaml-cpp builds nodes: aliases stay unexpanded here, so the
// walk is as long as the text however the nodes are shared.
class Shape final : public YAML::EventHandler {
 public:
  explicit Shape(Reader& reader) : reader_(reader) {}

  void OnDocumentStart(const YAML::Mark&) override {}
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override { node(nullptr, {}); }
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override { node(nullptr, {}); }
  void OnScalar(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                const std::string& value) override {
    node(&value, mark);
  }
  void OnSequenceStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {
    open(mark, false);
  }
  void OnSequenceEnd() override { close(); }
  void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {
    open(mark, true);
  }
  void OnMapEnd() override { close(); }

 private:
  struct Level {
    bool map;
    bool at_key = true;  // a mapping's events alternate key, value
    std::unordered_map<std::string, YAML::Mark> keys;
  };

  // Only scalar keys are compared: the configuration's readers take no other kind.
  void node(const std::string* scalar, const YAML::Mark& mark) {
    if (scalar && !levels_.empty() && levels_.back().map && levels_.back().at_key) {
      auto [first, inserted] = levels_.back().keys.try_emplace(*scalar, mark);
      if (!inserted) {
        reader_.error(mark, "duplicate key '" + *scalar + "' (first at " +
                                std::to_string(first->second.line + 1) + ":" +
                                std::to_string(first->second.column + 1) + ")");
      }
    }
    if (!levels_.empty() && levels_.back().map) levels_.back().at_key = !levels_.back().at_key;
  }

  void open(const YAML::Mark& mark, bool map) {
    if (levels_.size() == kMaxNesting) {
      throw YAML::ParserException(mark,
                                  "nesting deeper than " + std::to_string(kMaxNesting) + " levels");
    }
    levels_.push_back(Level{map, true, {}});
  }

  void close() {
    levels_.pop_back();
    node(nullptr, {});  // the collection just closed was its parent's key or value
  }

  Reader& reader_;
  std::vector<Level> levels_;
};

// Where a document after the first begins: YAML::Load reads only the first, so anything after a
// second `---` would be ignored without a word.
class Start final : public YAML::EventHandler {
 public:
  void OnDocumentStart(const YAML::Mark& mark) override { this->mark = mark; }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}

  YAML::Mark mark;
};

}  // namespace

void Errors::add(std::string_view message) {
  std::string line;
  line.reserve(message.size());
  for (unsigned char c : message) {
    if (c >= 0x20 && c != 0x7f) {
      line += static_cast<char>(c);
    } else if (c == '\n' || c == '\r' || c == '\t') {
      line += c == '\n' ? "\\n" : c == '\r' ? "\\r" : "\\t";
    } else {
      char escaped[5];
      std::snprintf(escaped, sizeof escaped, "\\x%02x", c);
      line += escaped;
    }
  }
  messages.push_back(std::move(line));
}

std::optional<std::string> read_file(const std::string& path, Errors& errors) {
  auto refuse = [&](const std::string& problem) -> std::optional<std::string> {
    errors.add(path + ":1:1: " + problem);
    return std::nullopt;
  };
  // O_NONBLOCK: opening a FIFO must not wait for a writer (it is refused below, unread).
  Fd fd(::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC));
  if (fd.get() < 0) return refuse(open_problem(path, errno));
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0)
    return refuse("cannot open file: " + std::string(std::strerror(errno)));
  if (!S_ISREG(st.st_mode)) {
    return refuse("is " + std::string(kind_of(st.st_mode)) + ", not a regular file");
  }
  if (static_cast<uint64_t>(st.st_size) > kMaxFileBytes) return refuse(too_large(st.st_size));
  std::string text;
  char chunk[64 * 1024];
  // The size is read again as the bytes come: the file may grow after fstat().
  while (text.size() <= kMaxFileBytes) {
    ssize_t n = ::read(fd.get(), chunk, sizeof chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return refuse("cannot read file: " + std::string(std::strerror(errno)));
    if (n == 0) return text;
    text.append(chunk, static_cast<size_t>(n));
  }
  return refuse(too_large(text.size()));
}

std::optional<YAML::Node> Reader::parse(const std::string& text) {
  if (auto mark = first_control(text)) {
    // Errors::add writes the character escaped.
    error(*mark, "control character '" + std::string(1, text[mark->pos]) +
                     "': YAML allows only tab, line feed and carriage return (a double-quoted "
                     "string can hold others as escapes)");
    return std::nullopt;
  }
  try {
    std::istringstream in(text);
    YAML::Parser parser(in);
    Shape shape(*this);
    parser.HandleNextDocument(shape);
    if (Start second; parser.HandleNextDocument(second)) {
      error(second.mark, "a second YAML document: the file must hold one ('---' starts another)");
      return std::nullopt;
    }
    return YAML::Load(text);
  } catch (const YAML::Exception& e) {
    error(e.mark, e.msg);
    return std::nullopt;
  }
}

}  // namespace usher::config
