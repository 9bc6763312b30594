#pragma once
// Session-ticket keys as a ring (previous, current, next period), derived from a secret and the
// period number: every usher that reads the same key file computes the same keys, so a client
// resumes on any of them, and keys rotate each period with no reload and no coordination.
// Tickets are sealed with the current key; the previous one still opens tickets issued before a
// rotation, and the next one those of an instance whose clock runs slightly ahead. With a
// cluster, the keys are instead random ones kept in Redis for their three periods, made by the
// first instance to need each: a leaked key opens only the tickets of its own periods.
#include <openssl/evp.h>
#include <openssl/ssl.h>

#include <atomic>
#include <cstdint>
#include <ctime>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "base/expected.h"

namespace usher::tls {

using Secret = std::vector<unsigned char>;

// A key file's secret: its bytes, at least 32 of them (`openssl rand -out FILE 48`).
Expected<Secret> read_ticket_secret(const std::string& path);
// Random, made once per process: without a key file, resumption survives reloads.
const Secret& process_ticket_secret();

struct TicketKey {
  static constexpr size_t kBytes = 80;
  unsigned char name[16];
  unsigned char hmac[32];
  unsigned char aes[32];
};
static_assert(sizeof(TicketKey) == TicketKey::kBytes);

// Ticket keys that come from a cluster's Redis (src/cluster), by rotation period: for each, the
// keys of periods index-1, index and index+1. Written by the cluster thread; read by the rings
// of every worker, which take the mutex only when the version has moved (once a rotation).
class ClusterTicketKeys {
 public:
  struct Set {
    int64_t index = 0;
    TicketKey keys[3] = {};
  };
  void publish(std::time_t period, const Set& set);
  uint64_t version() const { return version_.load(std::memory_order_acquire); }
  // The keys for `period`, or false when none came yet.
  bool get(std::time_t period, Set& out) const;

 private:
  mutable std::mutex mutex_;
  std::map<std::time_t, Set> sets_;
  std::atomic<uint64_t> version_{0};
};

ClusterTicketKeys& cluster_ticket_keys();

class TicketRing {
 public:
  using Key = TicketKey;

  // `cluster`: the keys come from cluster_ticket_keys(); until they do (and whenever Redis could
  // not be asked for a period), from `secret` as without it.
  TicketRing(Secret secret, std::time_t period_seconds, OSSL_LIB_CTX* library,
             bool cluster = false);
  TicketRing(const TicketRing&) = delete;
  TicketRing& operator=(const TicketRing&) = delete;
  ~TicketRing();

  const Key& current(std::time_t now);
  // The ring's key of that name, or null; `renew` when it is not the current one.
  const Key* find(const unsigned char* name, std::time_t now, bool& renew);
  // Ticket lifetime: a ticket opens until its key leaves the ring.
  std::time_t period() const { return period_; }

  // OpenSSL's ticket key callback; the SSL_CTX's app data is the ring.
  static int callback(SSL* ssl, unsigned char* name, unsigned char* iv, EVP_CIPHER_CTX* cipher,
                      EVP_MAC_CTX* mac, int encrypt);

 private:
  void refresh(std::time_t now);
  // The cluster's keys for periods index-1..index+1, where it has them all.
  bool from_cluster(int64_t index);
  Key derive(int64_t period) const;

  Secret secret_;
  std::time_t period_;
  EVP_CIPHER* cipher_;
  bool cluster_;
  uint64_t cluster_version_ = 0;  // of cluster_ticket_keys() when keys_ were taken
  int64_t index_ = INT64_MIN;
  Key keys_[3] = {};  // periods index_-1, index_, index_+1
};

}  // namespace usher::tls
