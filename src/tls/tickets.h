#pragma once
// Session-ticket keys as a ring (previous, current, next period), derived from a secret and the
// period number: every usher that reads the same key file computes the same keys, so a client
// resumes on any of them, and keys rotate each period with no reload and no coordination.
// Tickets are sealed with the current key; the previous one still opens tickets issued before a
// rotation, and the next one those of an instance whose clock runs slightly ahead.
#include <openssl/evp.h>
#include <openssl/ssl.h>

#include <cstdint>
#include <ctime>
#include <string>
#include <vector>

#include "base/expected.h"

namespace usher::tls {

using Secret = std::vector<unsigned char>;

// A key file's secret: its bytes, at least 32 of them (`openssl rand -out FILE 48`).
Expected<Secret> read_ticket_secret(const std::string& path);
// Random, made once per process: without a key file, resumption survives reloads.
const Secret& process_ticket_secret();

class TicketRing {
 public:
  struct Key {
    unsigned char name[16];
    unsigned char hmac[32];
    unsigned char aes[32];
  };

  TicketRing(Secret secret, std::time_t period_seconds, OSSL_LIB_CTX* library);
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
  Key derive(int64_t period) const;

  Secret secret_;
  std::time_t period_;
  EVP_CIPHER* cipher_;
  int64_t index_ = INT64_MIN;
  Key keys_[3] = {};  // periods index_-1, index_, index_+1
};

}  // namespace usher::tls
