#pragma once
// Backends from DNS names (a pool's `discovery: { dns, type, port }`). A thread of its own with
// one c-ares channel asks for each name again when its answer's TTL runs out (never sooner than
// a floor, with up to a tenth more at random so that many ushers do not ask at once), and hands
// a changed answer to `changed`. A failed or empty answer is reported to `failed` and changes
// nothing: a flaky resolver must not empty a pool (Envoy and nginx have both lost pools so).
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace usher::discovery {

enum class RecordType : uint8_t { kA, kAaaa, kSrv };

struct DnsName {
  std::string name;
  RecordType type = RecordType::kA;
  uint16_t port = 0;         // A and AAAA: the backends' port; SRV records carry their own
  uint64_t floor_ms = 1000;  // the shortest time between two questions, whatever the TTL says
  bool operator==(const DnsName&) const = default;
};

// One backend of an answer; an answer is sorted, so that equal answers compare equal.
struct Found {
  std::string address;  // "IP:PORT", "[IPv6]:PORT"
  uint32_t weight = 1;  // SRV: the record's weight (at least 1); A and AAAA: 1
  bool operator==(const Found&) const = default;
  auto operator<=>(const Found&) const = default;
};

struct DnsOptions {
  std::vector<std::string> servers;  // "IP:PORT"; empty: /etc/resolv.conf's
  uint64_t retry_ms = 1000;          // after a failure
  uint64_t timeout_ms = 2000;        // one try of a question
};

class DnsWatch {
 public:
  // Both are called on the watch's thread, with the index of the name in `names`.
  using Changed = std::function<void(size_t name, std::vector<Found> backends)>;
  using Failed = std::function<void(size_t name, const std::string& why)>;

  DnsWatch(std::vector<DnsName> names, DnsOptions options, Changed changed, Failed failed);
  ~DnsWatch();  // stops and joins the thread; questions in flight are dropped
  DnsWatch(const DnsWatch&) = delete;
  DnsWatch& operator=(const DnsWatch&) = delete;

  // Starts asking; an error when the resolver cannot be set up (then nothing is asked).
  std::string start();

 private:
  struct State;
  std::unique_ptr<State> state_;
  std::thread thread_;
};

// The shortest TTL of the answer records in a DNS reply, in seconds; -1 when it has none or
// cannot be read. (c-ares parses SRV records without their TTL.)
int64_t shortest_answer_ttl(const unsigned char* reply, size_t length);

}  // namespace usher::discovery
