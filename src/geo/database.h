#pragma once
// Where a client is: a country database in MaxMind DB format (GeoLite2-Country, DB-IP Lite
// country, or any database whose records carry country.iso_code and continent.code), opened
// once per generation and then only read, by any worker at once, with no lock and no allocation.
//
// A reload or a change of the file on disk opens a new Database beside the one serving and
// publishes it with the next generation (src/app); requests keep the one their generation holds.
#include <sys/types.h>

#include <array>
#include <ctime>
#include <memory>
#include <string>
#include <string_view>

#include "base/expected.h"
#include "base/ip_range.h"

struct MMDB_s;

namespace usher::geo {

// Two-letter upper-case codes, each empty where the database does not say.
struct Place {
  std::array<char, 2> country{};    // ISO 3166-1 alpha-2: "DE"
  std::array<char, 2> continent{};  // AF, AN, AS, EU, NA, OC, SA

  std::string_view country_code() const { return code(country); }
  std::string_view continent_code() const { return code(continent); }

 private:
  static std::string_view code(const std::array<char, 2>& c) {
    return {c.data(), c[0] ? c.size() : 0};
  }
};

// Tells one version of a file from another: a file renamed into place has a new inode, one
// rewritten in place a new size or modification time.
struct FileStamp {
  dev_t device = 0;
  ino_t inode = 0;
  off_t size = 0;
  timespec modified{};
  bool operator==(const FileStamp& o) const {
    return device == o.device && inode == o.inode && size == o.size &&
           modified.tv_sec == o.modified.tv_sec && modified.tv_nsec == o.modified.tv_nsec;
  }
};

// The stamp of `path` now; a default stamp when it cannot be read.
FileStamp stamp_of(const std::string& path);

class Database {
 public:
  // Copies the file into memory of its own first and maps that copy (MMDB_MODE_MMAP): a file
  // written over in place while it serves (nginx's geoip2 module crashed so, reading a mapping
  // whose file had shrunk) cannot change what the workers read. The error quotes libmaxminddb.
  static Expected<std::shared_ptr<const Database>> open(const std::string& path);
  ~Database();
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  // Any thread, no allocation, no lock. An address the database does not hold, or that is not
  // IP, has an empty place.
  Place lookup(const IpBytes& ip) const;

  const std::string& path() const { return path_; }
  const FileStamp& stamp() const { return stamp_; }  // of the file as it was read
  std::string_view type() const;                     // the metadata's database_type

 private:
  Database() = default;

  std::string path_;
  FileStamp stamp_;
  std::unique_ptr<MMDB_s> mmdb_;
};

// A request's client address and, looked up the first time something asks (a route's geo
// condition, ${geo_country}, the access log), its place: at most one lookup per request, none
// when nothing asks. Worker thread only; the database outlives it (the request's generation
// holds it). The place is a cache, so asking for it is const.
class Locator {
 public:
  Locator() = default;
  Locator(const Database* database, const IpBytes& client) : database_(database), client_(client) {}
  // A place decided without a database (tests).
  static Locator known(const IpBytes& client, const Place& place) {
    Locator locator(nullptr, client);
    locator.place_ = place;
    locator.looked_up_ = true;
    return locator;
  }

  const IpBytes& client() const { return client_; }
  const Place& place() const {
    if (!looked_up_) {
      looked_up_ = true;
      if (database_) place_ = database_->lookup(client_);
    }
    return place_;
  }
  bool looked_up() const { return looked_up_; }

 private:
  const Database* database_ = nullptr;
  IpBytes client_;
  mutable Place place_;
  mutable bool looked_up_ = false;
};

}  // namespace usher::geo
