#pragma once
// A TLS connection over one of a worker's sockets. The socket's reads and writes stay the
// reactor's own operations (io_uring or epoll alike): OpenSSL reads ciphertext from this stream's
// input buffer and writes records into its output buffer, through a memory BIO of our own, and
// the stream moves those buffers with the socket's awaitables. Worker thread only.
#include <openssl/ssl.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "net/socket.h"
#include "net/task.h"

namespace usher::tls {

// Why a handshake did not complete, as `usher_tls_handshake_failures_total{reason}` says it.
enum class HandshakeFailure : uint8_t {
  kNone,
  kTimeout,
  kClosed,           // the client closed or reset the connection
  kPlainHttp,        // an HTTP request arrived on the TLS port
  kProtocolVersion,  // the client offered only versions we refuse (TLS 1.0, 1.1)
  kNoSharedCipher,
  kOther,
};
inline constexpr size_t kHandshakeFailureKinds = 7;
const char* handshake_failure_name(HandshakeFailure failure);

class Stream {
 public:
  // Takes ownership of ssl, which must be in server or client mode already.
  Stream(SSL* ssl, net::Socket& socket);
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  ~Stream();

  net::Task<HandshakeFailure> handshake(uint64_t deadline_ms);
  // Plaintext into buffer: bytes, 0 when the peer closed, or -errno (-EPROTO: a TLS error).
  net::Task<long> read(char* buffer, size_t length, uint64_t deadline_ms);
  // Plaintext already decrypted or decryptable from bytes the kernel holds, without parking:
  // -EAGAIN when there is none yet.
  long try_read(char* buffer, size_t length);
  // Whether try_read can yield without the socket becoming readable.
  bool buffered() const;
  net::Task<bool> write_all(std::string_view a, std::string_view b, uint64_t deadline_ms);
  // Sends close_notify, without waiting for the peer's.
  net::Task<void> close(uint64_t deadline_ms);

  std::string_view version() const { return SSL_get_version(ssl_); }
  // The protocol ALPN chose ("h2", "http/1.1"), or empty.
  std::string_view alpn() const {
    const unsigned char* name = nullptr;
    unsigned length = 0;
    SSL_get0_alpn_selected(ssl_, &name, &length);
    return {reinterpret_cast<const char*>(name), length};
  }
  std::string_view cipher() const;
  std::string_view server_name() const;
  // The verified client certificate's subject (RFC 2253), or empty.
  std::string client_subject() const;
  // After a failed handshake: the peer certificate's verification result (X509_V_OK when that
  // was not what failed), and OpenSSL's reason for a kOther failure (static text, or null).
  long verify_result() const { return SSL_get_verify_result(ssl_); }
  const char* error_reason() const { return error_reason_; }
  // A parked connection gives back its input buffer (the next read takes one again).
  void release_input();

 private:
  static int bio_read(BIO* bio, char* out, int length);
  static int bio_write(BIO* bio, const char* in, int length);
  static long bio_ctrl(BIO* bio, int command, long number, void* pointer);
  static BIO_METHOD* bio_method();

  // Sends what OpenSSL wrote into out_; false if the socket failed.
  net::Task<bool> flush(uint64_t deadline_ms);
  // More ciphertext from the socket into in_: bytes, 0 at EOF, or -errno.
  net::Task<long> fill(uint64_t deadline_ms);
  char* in_tail();
  HandshakeFailure classify(int ssl_error);

  SSL* ssl_;
  net::Socket& socket_;
  std::unique_ptr<char[]> in_;  // ciphertext received and not yet taken by OpenSSL
  size_t in_begin_ = 0;
  size_t in_end_ = 0;
  bool starved_ = false;
  const char* error_reason_ =
      nullptr;           // OpenSSL wants bytes that have not arrived: buffered() is false
  std::string out_;      // records OpenSSL wrote and no flush has taken yet
  std::string sending_;  // the records the flush under way is sending
  bool flushing_ = false;
};

}  // namespace usher::tls
