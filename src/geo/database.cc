// Opening a country database and looking addresses up in it. The file is copied into a sealed
// memfd and libmaxminddb maps the copy: the mapping then belongs to this process alone, so an
// operator's `cp new.mmdb country.mmdb` over the live file (which truncates it first) cannot
// make a worker read past the end of a shrunken file (SIGBUS) or half of a new one. The copy
// costs the file's size in memory while one generation holds it (a few MiB for a country
// database) and a few milliseconds per open, on the control thread.
//
// Lookups use MMDB_lookup_sockaddr and MMDB_aget_value with a static path: MMDB_get_value
// would calloc its varargs path on every call (libmaxminddb 1.7.1), and
// MMDB_get_entry_data_list builds a whole list.
#include "geo/database.h"

#include <fcntl.h>
#include <maxminddb.h>
#include <netinet/in.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace usher::geo {

namespace {

FileStamp stamp_from(const struct stat& st) {
  return {st.st_dev, st.st_ino, st.st_size, st.st_mtim};
}

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

// The whole of `from` into `to`; errno's text on failure.
std::string copy_all(int from, int to) {
  char buffer[64 * 1024];
  while (true) {
    const ssize_t n = ::read(from, buffer, sizeof buffer);
    if (n == 0) return {};
    if (n < 0) {
      if (errno == EINTR) continue;
      return std::strerror(errno);
    }
    for (ssize_t done = 0; done < n;) {
      const ssize_t w = ::write(to, buffer + done, static_cast<size_t>(n - done));
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) return std::strerror(errno);
      done += w;
    }
  }
}

// A two-letter code at `path` of the entry, upper-cased; empty when absent or not two letters.
std::array<char, 2> read_code(MMDB_entry_s entry, const char* const* path) {
  MMDB_entry_data_s data{};
  if (MMDB_aget_value(&entry, &data, path) != MMDB_SUCCESS || !data.has_data ||
      data.type != MMDB_DATA_TYPE_UTF8_STRING || data.data_size != 2) {
    return {};
  }
  std::array<char, 2> code{};
  for (size_t i = 0; i < 2; ++i) {
    char c = data.utf8_string[i];
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
    if (c < 'A' || c > 'Z') return {};
    code[i] = c;
  }
  return code;
}

constexpr const char* kCountryPath[] = {"country", "iso_code", nullptr};
constexpr const char* kContinentPath[] = {"continent", "code", nullptr};

}  // namespace

FileStamp stamp_of(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return {};
  return stamp_from(st);
}

Expected<std::shared_ptr<const Database>> Database::open(const std::string& path) {
  const std::string where = "geoip database '" + path + "': ";
  Fd file(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (file.get() < 0) {
    return Error{where + MMDB_strerror(MMDB_FILE_OPEN_ERROR) + " (" + std::strerror(errno) + ")"};
  }
  struct stat st {};
  if (::fstat(file.get(), &st) != 0) return Error{where + std::strerror(errno)};
  if (!S_ISREG(st.st_mode)) return Error{where + "not a regular file"};
  Fd copy(::memfd_create("usher-geoip", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (copy.get() < 0) return Error{where + "memfd_create: " + std::strerror(errno)};
  if (std::string problem = copy_all(file.get(), copy.get()); !problem.empty()) {
    return Error{where + "reading it: " + problem};
  }
  ::fcntl(copy.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL);

  std::shared_ptr<Database> database(new Database());
  database->path_ = path;
  database->stamp_ = stamp_from(st);
  database->mmdb_ = std::make_unique<MMDB_s>();
  const std::string copy_path = "/proc/self/fd/" + std::to_string(copy.get());
  errno = 0;
  const int status = MMDB_open(copy_path.c_str(), MMDB_MODE_MMAP, database->mmdb_.get());
  if (status != MMDB_SUCCESS) {
    const int saved = errno;
    database->mmdb_.reset();  // MMDB_open frees what it had taken on failure
    std::string message = where + MMDB_strerror(status);
    if (status == MMDB_IO_ERROR && saved) message += std::string(" (") + std::strerror(saved) + ")";
    return Error{message};
  }
  return std::shared_ptr<const Database>(std::move(database));
}

Database::~Database() {
  if (mmdb_) MMDB_close(mmdb_.get());
}

std::string_view Database::type() const {
  const char* type = mmdb_->metadata.database_type;
  return type ? type : "";
}

Place Database::lookup(const IpBytes& ip) const {
  sockaddr_in v4{};
  sockaddr_in6 v6{};
  const sockaddr* address = nullptr;
  if (ip.family == AF_INET) {
    v4.sin_family = AF_INET;
    std::memcpy(&v4.sin_addr, ip.bytes.data() + 12, 4);
    address = reinterpret_cast<const sockaddr*>(&v4);
  } else if (ip.family == AF_INET6) {
    v6.sin6_family = AF_INET6;
    std::memcpy(&v6.sin6_addr, ip.bytes.data(), 16);
    address = reinterpret_cast<const sockaddr*>(&v6);
  } else {
    return {};
  }
  int error = MMDB_SUCCESS;
  const MMDB_lookup_result_s result = MMDB_lookup_sockaddr(mmdb_.get(), address, &error);
  if (error != MMDB_SUCCESS || !result.found_entry) return {};
  Place place;
  place.country = read_code(result.entry, kCountryPath);
  place.continent = read_code(result.entry, kContinentPath);
  return place;
}

}  // namespace usher::geo
