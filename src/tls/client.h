#pragma once
// Client-side TLS: one pool's settings (trusted CAs, client certificate, SNI) for connections to
// its backends, built for one worker in that worker's library context, or for the health
// checker's thread in the default one. Each context keeps the last session of each backend so
// that the next connection to it resumes instead of paying a full handshake. Built off the
// workers (start, reload); then used by one thread only, sessions included.
#include <openssl/ssl.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "base/address.h"
#include "base/expected.h"
#include "config/config.h"
#include "tls/stream.h"

namespace usher::tls {

class ClientContext {
 public:
  // Loads the pool's CA file (or the system's store) and client certificate into `library`
  // (null: the default library). A problem is reported as "SOURCE:LINE:COL: ..." of its key.
  static Expected<std::shared_ptr<const ClientContext>> build(const config::Pool& pool,
                                                              const std::string& source,
                                                              OSSL_LIB_CTX* library);
  ClientContext(const ClientContext&) = delete;
  ClientContext& operator=(const ClientContext&) = delete;
  ~ClientContext();

  // A new client connection to the pool's backend `slot` at `address`: the name to verify (the
  // pool's sni, else the address's IP) and the backend's last session are set on it.
  SSL* new_connection(uint32_t slot, const Address& address) const;

 private:
  ClientContext() = default;
  static int on_new_session(SSL* ssl, SSL_SESSION* session);

  SSL_CTX* ctx_ = nullptr;
  std::string sni_;
  bool verify_ = true;
  // The last session by backend slot; a resumed connection's new tickets replace it.
  mutable std::vector<SSL_SESSION*> sessions_;
};

// Why a client handshake failed, in words for the log: the certificate verification error, the
// TLS error, or the failure's kind.
std::string handshake_error(const Stream& stream, HandshakeFailure failure);

// One worker's client contexts, by pool of a configuration: null for a plain pool.
using PoolContexts = std::vector<std::shared_ptr<const ClientContext>>;

}  // namespace usher::tls
