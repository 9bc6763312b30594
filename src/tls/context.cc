#include "tls/context.h"

#include <openssl/err.h>
#include <openssl/ocsp.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <fstream>
#include <iterator>

#include "tls/errors.h"

namespace usher::tls {

namespace {

// TLS 1.2: AEAD ciphers with ECDHE only (Mozilla's "intermediate"); TLS 1.3 keeps its own three.
constexpr const char* kCiphers12 =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";
constexpr const char* kGroups = "X25519:P-256:P-384";
constexpr unsigned char kSessionContext[] = "usher";

std::string lower(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

CertificateInfo describe(const std::string& file, X509* cert) {
  CertificateInfo info{{}, file, {}, 0};
  auto* names =
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  for (int i = 0; names && i < sk_GENERAL_NAME_num(names); ++i) {
    const GENERAL_NAME* name = sk_GENERAL_NAME_value(names, i);
    if (name->type != GEN_DNS) continue;
    const ASN1_IA5STRING* dns = name->d.dNSName;
    info.names.push_back(
        lower({reinterpret_cast<const char*>(dns->data), static_cast<size_t>(dns->length)}));
  }
  GENERAL_NAMES_free(names);
  if (info.names.empty()) {  // no subjectAltName: the common name, as older clients read it
    char cn[256];
    if (X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof cn) > 0)
      info.names.push_back(lower(cn));
  }
  std::tm tm{};
  if (ASN1_TIME_to_tm(X509_get0_notAfter(cert), &tm) == 1) info.not_after = timegm(&tm);
  return info;
}

// A stapled response as read from its file; it must be a successful OCSP response.
std::string read_ocsp(const std::string& path, std::vector<unsigned char>& out) {
  std::ifstream file(path, std::ios::binary);
  if (!file) return "cannot read OCSP response " + path;
  out.assign(std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>());
  const unsigned char* at = out.data();
  OCSP_RESPONSE* response = d2i_OCSP_RESPONSE(nullptr, &at, static_cast<long>(out.size()));
  const bool ok = response && OCSP_response_status(response) == OCSP_RESPONSE_STATUS_SUCCESSFUL;
  OCSP_RESPONSE_free(response);
  ERR_clear_error();
  return ok ? "" : path + " is not a successful OCSP response (DER)";
}

int select_alpn(SSL*, const unsigned char** out, unsigned char* out_length, const unsigned char* in,
                unsigned in_length, void* arg) {
  const auto* ours = static_cast<const std::vector<unsigned char>*>(arg);
  unsigned char* chosen = nullptr;
  if (SSL_select_next_proto(&chosen, out_length, ours->data(), static_cast<unsigned>(ours->size()),
                            in, in_length) != OPENSSL_NPN_NEGOTIATED) {
    return SSL_TLSEXT_ERR_NOACK;  // no protocol in common: go on without ALPN, as nginx does
  }
  *out = chosen;
  return SSL_TLSEXT_ERR_OK;
}

// One certificate's SSL_CTX, with the listener's protocol settings; null and `error` on failure.
// Mutual TLS: clients' certificates must chain to `ca` (and be sent at all when required).
bool require_clients(SSL_CTX* ctx, const config::ListenerTls::ClientAuth& auth,
                     std::string& error) {
  STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(auth.ca.c_str());
  if (!names || SSL_CTX_load_verify_file(ctx, auth.ca.c_str()) != 1) {
    if (names) sk_X509_NAME_pop_free(names, X509_NAME_free);
    error = "cannot load client_auth ca " + auth.ca + ": " + openssl_error();
    return false;
  }
  SSL_CTX_set_client_CA_list(ctx, names);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | (auth.required ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0),
                     nullptr);
  return true;
}

SSL_CTX* make_context(const config::ListenerTls& config, const config::TlsCertificate& cert,
                      OSSL_LIB_CTX* library, TicketRing& tickets, std::string& error,
                      bool& key_problem) {
  SSL_CTX* ctx = SSL_CTX_new_ex(library, nullptr, TLS_server_method());
  if (!ctx) {
    error = openssl_error();
    return nullptr;
  }
  const bool tls13_only = config.min_version == config::ListenerTls::Version::k13;
  SSL_CTX_set_min_proto_version(ctx, tls13_only ? TLS1_3_VERSION : TLS1_2_VERSION);
  SSL_CTX_set_options(
      ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  SSL_CTX_set_cipher_list(ctx, kCiphers12);
  SSL_CTX_set1_groups_list(ctx, kGroups);
  SSL_CTX_set_session_id_context(ctx, kSessionContext, sizeof kSessionContext - 1);
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
  SSL_CTX_sess_set_cache_size(ctx, 20000);
  SSL_CTX_set_app_data(ctx, &tickets);
  SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, TicketRing::callback);
  SSL_CTX_set_timeout(ctx, static_cast<long>(tickets.period()));
  if (SSL_CTX_use_certificate_chain_file(ctx, cert.cert.c_str()) != 1) {
    error = "cannot load certificate " + cert.cert + ": " + openssl_error();
  } else if (SSL_CTX_use_PrivateKey_file(ctx, cert.key.c_str(), SSL_FILETYPE_PEM) != 1 ||
             SSL_CTX_check_private_key(ctx) != 1) {
    error = ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH
                ? "key " + cert.key + " does not match certificate " + cert.cert
                : "cannot load key " + cert.key + ": " + openssl_error();
    ERR_clear_error();
    key_problem = true;
  } else if (config.client_auth) {
    require_clients(ctx, *config.client_auth, error);
  }
  if (!error.empty()) {
    SSL_CTX_free(ctx);
    return nullptr;
  }
  return ctx;
}

}  // namespace

Library::~Library() {
  if (context_) OSSL_LIB_CTX_free(context_);
}

OSSL_LIB_CTX* Library::get() const {
  if (!context_) context_ = OSSL_LIB_CTX_new();
  return context_;
}

Expected<std::shared_ptr<const ServerContext>> ServerContext::build(
    const config::Listener& listener, const std::string& source, OSSL_LIB_CTX* library,
    const Secret& secret) {
  const config::ListenerTls& config = *listener.tls;
  std::shared_ptr<ServerContext> out(new ServerContext());
  out->tickets_ = std::make_unique<TicketRing>(
      secret, static_cast<std::time_t>(config.session_tickets.rotate.count() / 1000), library,
      config.session_tickets.cluster);
  for (const std::string& protocol : config.alpn) {
    out->alpn_.push_back(static_cast<unsigned char>(protocol.size()));
    out->alpn_.insert(out->alpn_.end(), protocol.begin(), protocol.end());
  }
  out->ocsp_.resize(config.certificates.size());  // addresses stay: each context points at one
  for (const config::TlsCertificate& cert : config.certificates) {
    std::string error;
    bool key_problem = false;
    SSL_CTX* ctx = make_context(config, cert, library, *out->tickets_, error, key_problem);
    if (!ctx) return Error{cert.marks.where(source, key_problem ? "key" : "cert") + error};
    const size_t index = out->contexts_.size();
    out->contexts_.push_back(ctx);
    out->info_.push_back(describe(cert.cert, SSL_CTX_get0_certificate(ctx)));
    out->info_.back().listener = listener.name;
    for (const std::string& name : out->info_.back().names) {
      if (name.starts_with("*.")) {
        out->wildcard_.emplace(name.substr(2), index);  // the first certificate to claim it wins
      } else {
        out->exact_.emplace(name, index);
      }
    }
    SSL_CTX_set_alpn_select_cb(ctx, select_alpn, &out->alpn_);
    if (!cert.ocsp.empty()) {
      if (std::string problem = read_ocsp(cert.ocsp, out->ocsp_[index]); !problem.empty()) {
        return Error{cert.marks.where(source, "ocsp") + problem};
      }
      SSL_CTX_set_tlsext_status_cb(ctx, on_status_request);
      SSL_CTX_set_tlsext_status_arg(ctx, &out->ocsp_[index]);
    }
  }
  if (out->contexts_.empty()) return Error{config.marks.where(source, "") + "no certificate"};
  SSL_CTX_set_tlsext_servername_callback(out->contexts_.front(), on_server_name);
  SSL_CTX_set_tlsext_servername_arg(out->contexts_.front(), out.get());
  return std::shared_ptr<const ServerContext>(std::move(out));
}

ServerContext::~ServerContext() {
  for (SSL_CTX* ctx : contexts_) SSL_CTX_free(ctx);
}

SSL* ServerContext::new_connection() const {
  SSL* ssl = SSL_new(contexts_.front());
  if (ssl) SSL_set_accept_state(ssl);
  return ssl;
}

size_t ServerContext::select(std::string_view server_name) const {
  char name[256];
  if (server_name.empty() || server_name.size() >= sizeof name) return 0;
  for (size_t i = 0; i < server_name.size(); ++i) {
    name[i] = static_cast<char>(std::tolower(static_cast<unsigned char>(server_name[i])));
  }
  const std::string key(name, server_name.size());
  if (auto it = exact_.find(key); it != exact_.end()) return it->second;
  const size_t dot = key.find('.');
  if (dot != std::string::npos) {
    if (auto it = wildcard_.find(key.substr(dot + 1)); it != wildcard_.end()) return it->second;
  }
  return 0;
}

// OpenSSL frees what it staples: each handshake that asks gets its own copy.
int ServerContext::on_status_request(SSL* ssl, void* response) {
  const auto& der = *static_cast<const std::vector<unsigned char>*>(response);
  if (der.empty()) return SSL_TLSEXT_ERR_NOACK;
  auto* copy = static_cast<unsigned char*>(OPENSSL_malloc(der.size()));
  if (!copy) return SSL_TLSEXT_ERR_NOACK;
  std::memcpy(copy, der.data(), der.size());
  SSL_set_tlsext_status_ocsp_resp(ssl, copy, static_cast<long>(der.size()));
  return SSL_TLSEXT_ERR_OK;
}

int ServerContext::on_server_name(SSL* ssl, int*, void* self) {
  const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  if (!name) return SSL_TLSEXT_ERR_NOACK;
  const auto* context = static_cast<const ServerContext*>(self);
  const size_t chosen = context->select(name);
  if (chosen != 0) SSL_set_SSL_CTX(ssl, context->contexts_[chosen]);
  return SSL_TLSEXT_ERR_OK;
}

namespace {

void build_listener_contexts(const config::Config& config,
                             const std::vector<const Library*>& libraries,
                             std::vector<WorkerContexts>& out, std::vector<std::string>& problems) {
  for (size_t l = 0; l < config.listeners.size(); ++l) {
    const auto& tls = config.listeners[l].tls;
    if (!tls) continue;
    Secret secret = process_ticket_secret();
    if (!tls->session_tickets.key_file.empty()) {
      auto read = read_ticket_secret(tls->session_tickets.key_file);
      if (!read) {
        problems.push_back(tls->marks.where(config.source, "session_tickets.key_file") +
                           read.error().message);
        continue;
      }
      secret = std::move(*read);
    }
    for (size_t w = 0; w < libraries.size(); ++w) {
      auto built =
          ServerContext::build(config.listeners[l], config.source, libraries[w]->get(), secret);
      if (!built) {
        problems.push_back(built.error().message);
        break;  // the same files: every worker would say the same
      }
      out[w].listeners[l] = std::move(*built);
    }
  }
}

void build_pool_contexts(const config::Config& config, const std::vector<const Library*>& libraries,
                         std::vector<WorkerContexts>& out, std::vector<std::string>& problems) {
  for (size_t p = 0; p < config.pools.size(); ++p) {
    if (!config.pools[p].tls) continue;
    for (size_t w = 0; w < libraries.size(); ++w) {
      auto built = ClientContext::build(config.pools[p], config.source, libraries[w]->get());
      if (!built) {
        problems.push_back(built.error().message);
        break;
      }
      out[w].pools[p] = std::move(*built);
    }
  }
}

}  // namespace

std::vector<WorkerContexts> build_contexts(const config::Config& config,
                                           const std::vector<const Library*>& libraries,
                                           std::vector<std::string>& problems) {
  std::vector<WorkerContexts> out(libraries.size(),
                                  WorkerContexts{ListenerContexts(config.listeners.size(), nullptr),
                                                 PoolContexts(config.pools.size(), nullptr)});
  build_listener_contexts(config, libraries, out, problems);
  build_pool_contexts(config, libraries, out, problems);
  return out;
}

std::vector<CertificateInfo> certificates(const ListenerContexts& contexts) {
  std::vector<CertificateInfo> out;
  for (const auto& context : contexts) {
    if (context)
      out.insert(out.end(), context->certificates().begin(), context->certificates().end());
  }
  return out;
}

std::vector<std::string> expiry_warnings(const ListenerContexts& contexts, std::time_t now,
                                         std::time_t within_seconds) {
  std::vector<std::string> warnings;
  for (const CertificateInfo& cert : certificates(contexts)) {
    {
      if (cert.not_after - now > within_seconds) continue;
      const long days = static_cast<long>((cert.not_after - now) / 86400);
      warnings.push_back(cert.not_after <= now ? cert.file + ": the certificate has expired"
                                               : cert.file + ": the certificate expires in " +
                                                     std::to_string(days) + " days");
    }
  }
  return warnings;
}

}  // namespace usher::tls
