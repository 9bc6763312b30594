#pragma once
// Server-side TLS: the certificates of one listener, built for one worker. Nothing OpenSSL locks
// is shared between workers on the handshake path: each worker has its own library context
// (algorithms fetched once per worker) and its own SSL_CTX per certificate, with its own session
// cache. Built off the workers (start, reload), then used by one worker only.
#include <openssl/ssl.h>

#include <array>
#include <ctime>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "base/expected.h"
#include "config/config.h"
#include "tls/client.h"
#include "tls/tickets.h"

namespace usher::tls {

// One worker's OpenSSL library context, for the whole run; made when a TLS listener first
// needs it (off the workers), so that plain HTTP pays nothing for OpenSSL.
class Library {
 public:
  Library() = default;
  Library(const Library&) = delete;
  Library& operator=(const Library&) = delete;
  ~Library();
  OSSL_LIB_CTX* get() const;

 private:
  mutable OSSL_LIB_CTX* context_ = nullptr;
};

struct CertificateInfo {
  std::string listener;
  std::string file;
  std::vector<std::string> names;  // DNS names (subjectAltName, else the common name)
  std::time_t not_after = 0;
};

class ServerContext {
 public:
  // Loads every certificate of `config` into `library`: each chain must parse, each key must
  // match its certificate. A problem is reported as "SOURCE:LINE:COL: ..." of the listener's
  // certificate entry. Ticket keys derive from `secret` (tickets.h).
  static Expected<std::shared_ptr<const ServerContext>> build(const config::Listener& listener,
                                                              const std::string& source,
                                                              OSSL_LIB_CTX* library,
                                                              const Secret& secret);
  ServerContext(const ServerContext&) = delete;
  ServerContext& operator=(const ServerContext&) = delete;
  ~ServerContext();

  // A new server connection on the default certificate; SNI switches it during the handshake.
  SSL* new_connection() const;
  // Exact name, then the "*.suffix" wildcard of its parent, then the default (index 0).
  size_t select(std::string_view server_name) const;
  const std::vector<CertificateInfo>& certificates() const { return info_; }

 private:
  ServerContext() = default;
  static int on_server_name(SSL* ssl, int* alert, void* self);
  static int on_status_request(SSL* ssl, void* response);

  std::unique_ptr<TicketRing> tickets_;           // every context's app data
  std::vector<std::vector<unsigned char>> ocsp_;  // by certificate: a DER response, or empty
  std::vector<SSL_CTX*> contexts_;                // by certificate
  std::vector<CertificateInfo> info_;
  std::unordered_map<std::string, size_t> exact_;     // lower-case name -> certificate
  std::unordered_map<std::string, size_t> wildcard_;  // "example.com" for "*.example.com"
  std::vector<unsigned char> alpn_;                   // wire format
};

// A worker's contexts, by listener of a configuration: null for a plain listener.
using ListenerContexts = std::vector<std::shared_ptr<const ServerContext>>;

// Everything TLS of one worker for one configuration.
struct WorkerContexts {
  ListenerContexts listeners;
  PoolContexts pools;
};

// Contexts for every TLS listener and every TLS pool of `config` in each library (one per
// worker), with ticket keys shared by the workers of a listener; every problem found goes to
// `problems`.
std::vector<WorkerContexts> build_contexts(const config::Config& config,
                                           const std::vector<const Library*>& libraries,
                                           std::vector<std::string>& problems);

// Every certificate of a worker's contexts.
std::vector<CertificateInfo> certificates(const ListenerContexts& contexts);

// Certificates that expire within `within_seconds` of `now`, one warning each.
std::vector<std::string> expiry_warnings(const ListenerContexts& contexts, std::time_t now,
                                         std::time_t within_seconds);

}  // namespace usher::tls
