#include "tls/client.h"

#include <openssl/x509v3.h>

#include <cstdint>

#include "tls/errors.h"

namespace usher::tls {

namespace {

constexpr unsigned char kAlpn[] = "\x08http/1.1";

// The backend slot a connection goes to, carried on the SSL for the new-session callback.
void* slot_tag(uint32_t slot) {
  return reinterpret_cast<void*>(static_cast<uintptr_t>(slot) + 1);
}
uint32_t tagged_slot(SSL* ssl) {
  return static_cast<uint32_t>(reinterpret_cast<uintptr_t>(SSL_get_app_data(ssl)) - 1);
}

// The trust anchors and client certificate of `tls`; an error names the key that failed.
bool load_files(SSL_CTX* ctx, const config::PoolTls& tls, const std::string& source,
                std::string& error) {
  if (tls.ca.empty()) {
    SSL_CTX_set_default_verify_paths(ctx);  // a missing system store fails each handshake instead
  } else if (SSL_CTX_load_verify_file(ctx, tls.ca.c_str()) != 1) {
    error = tls.marks.where(source, "ca") + "cannot load ca " + tls.ca + ": " + openssl_error();
    return false;
  }
  if (tls.cert.empty()) return true;
  if (SSL_CTX_use_certificate_chain_file(ctx, tls.cert.c_str()) != 1) {
    error = tls.marks.where(source, "cert") + "cannot load certificate " + tls.cert + ": " +
            openssl_error();
    return false;
  }
  if (SSL_CTX_use_PrivateKey_file(ctx, tls.key.c_str(), SSL_FILETYPE_PEM) != 1 ||
      SSL_CTX_check_private_key(ctx) != 1) {
    error = tls.marks.where(source, "key") + "cannot use key " + tls.key + " with certificate " +
            tls.cert + ": " + openssl_error();
    return false;
  }
  return true;
}

}  // namespace

Expected<std::shared_ptr<const ClientContext>> ClientContext::build(const config::Pool& pool,
                                                                    const std::string& source,
                                                                    OSSL_LIB_CTX* library) {
  const config::PoolTls& tls = *pool.tls;
  std::shared_ptr<ClientContext> out(new ClientContext());
  out->ctx_ = SSL_CTX_new_ex(library, nullptr, TLS_client_method());
  if (!out->ctx_) return Error{tls.marks.where(source, "") + openssl_error()};
  SSL_CTX* ctx = out->ctx_;
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  static constexpr unsigned char kAlpnH2[] = "\x02h2";
  if (pool.h2) {
    SSL_CTX_set_alpn_protos(ctx, kAlpnH2, sizeof kAlpnH2 - 1);
  } else {
    SSL_CTX_set_alpn_protos(ctx, kAlpn, sizeof kAlpn - 1);
  }
  SSL_CTX_set_verify(ctx, tls.verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, nullptr);
  // Sessions are kept by backend here, not in OpenSSL's cache (which a client never looks up).
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
  SSL_CTX_sess_set_new_cb(ctx, on_new_session);
  SSL_CTX_set_app_data(ctx, out.get());
  if (std::string error; !load_files(ctx, tls, source, error)) return Error{error};
  out->sni_ = tls.sni;
  out->verify_ = tls.verify;
  out->sessions_.resize(pool.backends.size(), nullptr);
  return std::shared_ptr<const ClientContext>(std::move(out));
}

ClientContext::~ClientContext() {
  for (SSL_SESSION* session : sessions_) SSL_SESSION_free(session);
  SSL_CTX_free(ctx_);
}

SSL* ClientContext::new_connection(uint32_t slot, const Address& address) const {
  SSL* ssl = SSL_new(ctx_);
  if (!ssl) return nullptr;
  SSL_set_connect_state(ssl);
  SSL_set_app_data(ssl, slot_tag(slot));
  if (!sni_.empty()) {
    SSL_set_tlsext_host_name(ssl, sni_.c_str());
    if (verify_) SSL_set1_host(ssl, sni_.c_str());
  } else if (verify_) {
    char ip[INET6_ADDRSTRLEN];  // inet_ntop ends it with a NUL
    if (format_ip(address.sockaddr_ptr(), ip, sizeof ip) > 0)
      X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), ip);
  }
  if (slot < sessions_.size() && sessions_[slot] && SSL_SESSION_is_resumable(sessions_[slot])) {
    SSL_set_session(ssl, sessions_[slot]);
  }
  return ssl;
}

int ClientContext::on_new_session(SSL* ssl, SSL_SESSION* session) {
  auto* self = static_cast<const ClientContext*>(SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl)));
  const uint32_t slot = tagged_slot(ssl);
  if (slot >= self->sessions_.size()) self->sessions_.resize(slot + 1, nullptr);
  // A copy: OpenSSL marks a connection's own session unresumable when the connection is freed
  // without a shutdown, as every upstream connection is (a kept-alive one when the backend's
  // idle timeout ends it); what ended the connection has no bearing on the session here.
  SSL_SESSION* copy = SSL_SESSION_dup(session);
  if (!copy) return 0;
  SSL_SESSION_free(self->sessions_[slot]);
  self->sessions_[slot] = copy;
  return 0;  // OpenSSL keeps its reference
}

std::string handshake_error(const Stream& stream, HandshakeFailure failure) {
  const long verified = stream.verify_result();
  if (verified != X509_V_OK) {
    return std::string("certificate verification failed: ") +
           X509_verify_cert_error_string(verified);
  }
  if (failure == HandshakeFailure::kOther && stream.error_reason()) return stream.error_reason();
  return handshake_failure_name(failure);
}

}  // namespace usher::tls
