#include "tls/stream.h"

#include <openssl/err.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace usher::tls {

namespace {

// One record's plaintext at most, plus room for the record header and a whole TLS 1.2 read.
constexpr size_t kRecordPlaintext = 16 * 1024;
constexpr size_t kInBytes = kRecordPlaintext + 2048;
// Records are sent once this much has accumulated, so that a large body never sits whole here.
constexpr size_t kFlushBytes = 64 * 1024;

// A request line starts with an upper-case method; a TLS record with a content type byte.
bool looks_like_http(char first) {
  return first >= 'A' && first <= 'Z';
}

// SSL_get_error needs an empty error queue before each call. OpenSSL 3.0's ERR_clear_error walks
// all the queue's slots (about 800 instructions) even when it is empty; peeking is cheap.
void clear_errors() {
  if (ERR_peek_error() != 0) ERR_clear_error();
}

}  // namespace

const char* handshake_failure_name(HandshakeFailure failure) {
  switch (failure) {
    case HandshakeFailure::kNone:
      return "none";
    case HandshakeFailure::kTimeout:
      return "timeout";
    case HandshakeFailure::kClosed:
      return "closed";
    case HandshakeFailure::kPlainHttp:
      return "plain_http";
    case HandshakeFailure::kProtocolVersion:
      return "protocol_version";
    case HandshakeFailure::kNoSharedCipher:
      return "no_shared_cipher";
    case HandshakeFailure::kOther:
      break;
  }
  return "other";
}

BIO_METHOD* Stream::bio_method() {
  static BIO_METHOD* method = [] {
    BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "usher stream");
    BIO_meth_set_read(m, bio_read);
    BIO_meth_set_write(m, bio_write);
    BIO_meth_set_ctrl(m, bio_ctrl);
    return m;
  }();
  return method;
}

int Stream::bio_read(BIO* bio, char* out, int length) {
  auto* self = static_cast<Stream*>(BIO_get_data(bio));
  BIO_clear_retry_flags(bio);
  const size_t available = self->in_end_ - self->in_begin_;
  if (available == 0 || length <= 0) {
    self->starved_ = true;
    BIO_set_retry_read(bio);
    return -1;
  }
  const size_t n = std::min(available, static_cast<size_t>(length));
  std::memcpy(out, self->in_.get() + self->in_begin_, n);
  self->in_begin_ += n;
  if (self->in_begin_ == self->in_end_) self->in_begin_ = self->in_end_ = 0;
  return static_cast<int>(n);
}

int Stream::bio_write(BIO* bio, const char* in, int length) {
  auto* self = static_cast<Stream*>(BIO_get_data(bio));
  BIO_clear_retry_flags(bio);
  self->out_.append(in, static_cast<size_t>(length));
  return length;
}

long Stream::bio_ctrl(BIO*, int command, long, void*) {
  return command == BIO_CTRL_FLUSH ? 1 : 0;
}

Stream::Stream(SSL* ssl, net::Socket& socket) : ssl_(ssl), socket_(socket) {
  BIO* bio = BIO_new(bio_method());
  BIO_set_data(bio, this);
  BIO_set_init(bio, 1);
  SSL_set_bio(ssl_, bio, bio);
}

Stream::~Stream() {
  SSL_free(ssl_);
}

std::string_view Stream::cipher() const {
  const SSL_CIPHER* cipher = SSL_get_current_cipher(ssl_);
  return cipher ? SSL_CIPHER_get_name(cipher) : "";
}

std::string_view Stream::server_name() const {
  const char* name = SSL_get_servername(ssl_, TLSEXT_NAMETYPE_host_name);
  return name ? name : "";
}

std::string Stream::client_subject() const {
  X509* cert = SSL_get0_peer_certificate(ssl_);
  if (!cert || SSL_get_verify_result(ssl_) != X509_V_OK) return {};
  BIO* out = BIO_new(BIO_s_mem());
  X509_NAME_print_ex(out, X509_get_subject_name(cert), 0, XN_FLAG_RFC2253);
  char* text = nullptr;
  const long length = BIO_get_mem_data(out, &text);
  std::string subject(text, static_cast<size_t>(std::max(length, 0L)));
  BIO_free(out);
  return subject;
}

char* Stream::in_tail() {
  if (!in_) in_ = std::make_unique<char[]>(kInBytes);
  return in_.get() + in_end_;
}

net::Task<long> Stream::fill(uint64_t deadline_ms) {
  char* tail = in_tail();
  long n = co_await socket_.read(tail, kInBytes - in_end_, deadline_ms);
  if (n > 0) {
    in_end_ += static_cast<size_t>(n);
    starved_ = false;
  }
  co_return n;
}

// A reader and a writer may share the stream (an HTTP/2 connection, a WebSocket tunnel), and
// SSL_read may produce records too (TLS 1.3 tickets, alerts). One flush at a time sends: it takes
// out_ whole into sending_, so records added meanwhile never move the bytes a write in flight
// points into, and it goes on until out_ stays empty. A second caller returns at once.
net::Task<bool> Stream::flush(uint64_t deadline_ms) {
  if (flushing_) co_return true;
  flushing_ = true;
  bool sent_all = true;
  while (sent_all && !out_.empty()) {
    sending_.swap(out_);
    size_t sent = 0;
    while (sent < sending_.size()) {
      long n = co_await socket_.write(sending_.data() + sent, sending_.size() - sent, deadline_ms);
      if (n <= 0) {
        sent_all = false;
        break;
      }
      sent += static_cast<size_t>(n);
    }
    sending_.clear();
  }
  std::string().swap(sending_);  // an idle connection keeps no output buffer
  if (out_.empty()) std::string().swap(out_);
  flushing_ = false;
  co_return sent_all;
}

HandshakeFailure Stream::classify(int ssl_error) {
  HandshakeFailure failure = HandshakeFailure::kClosed;
  if (ssl_error == SSL_ERROR_SSL) {
    switch (ERR_GET_REASON(ERR_peek_error())) {
      case SSL_R_UNSUPPORTED_PROTOCOL:
      case SSL_R_WRONG_VERSION_NUMBER:
      case SSL_R_VERSION_TOO_LOW:
        failure = HandshakeFailure::kProtocolVersion;
        break;
      case SSL_R_NO_SHARED_CIPHER:
        failure = HandshakeFailure::kNoSharedCipher;
        break;
      case SSL_R_HTTP_REQUEST:
        failure = HandshakeFailure::kPlainHttp;
        break;
      default:
        failure = HandshakeFailure::kOther;
        error_reason_ = ERR_reason_error_string(ERR_peek_error());
    }
  }
  ERR_clear_error();
  return failure;
}

net::Task<HandshakeFailure> Stream::handshake(uint64_t deadline_ms) {
  for (bool first = true;; first = false) {
    clear_errors();
    const int result = SSL_do_handshake(ssl_);
    const int error = result == 1 ? SSL_ERROR_NONE : SSL_get_error(ssl_, result);
    // Our flight, or the alert that ends a failed handshake.
    if (!out_.empty() && !co_await flush(deadline_ms)) co_return HandshakeFailure::kClosed;
    if (result == 1) co_return HandshakeFailure::kNone;
    if (error != SSL_ERROR_WANT_READ) co_return classify(error);
    const long n = co_await fill(deadline_ms);
    if (n == -ETIMEDOUT) co_return HandshakeFailure::kTimeout;
    if (n <= 0) co_return HandshakeFailure::kClosed;
    if (first && looks_like_http(in_[0])) co_return HandshakeFailure::kPlainHttp;
  }
}

net::Task<long> Stream::read(char* buffer, size_t length, uint64_t deadline_ms) {
  while (true) {
    clear_errors();
    size_t got = 0;
    const int result = SSL_read_ex(ssl_, buffer, length, &got);
    if (result == 1) co_return static_cast<long>(got);
    const int error = SSL_get_error(ssl_, result);
    if (!out_.empty() && !co_await flush(deadline_ms)) co_return -EPIPE;
    if (error == SSL_ERROR_ZERO_RETURN) co_return 0;  // close_notify
    if (error != SSL_ERROR_WANT_READ) {
      ERR_clear_error();
      co_return -EPROTO;
    }
    const long n = co_await fill(deadline_ms);
    if (n <= 0) co_return n;
  }
}

long Stream::try_read(char* buffer, size_t length) {
  // Neither we nor OpenSSL hold a byte of the connection: read the socket first, which spares an
  // SSL_read_ex that could only ask for bytes (and, with released buffers, take and free its
  // 16 KiB read buffer to do so).
  bool ask_socket = in_begin_ == in_end_ && SSL_has_pending(ssl_) == 0;
  while (true) {
    if (ask_socket) {
      char* tail = in_tail();
      const long n = socket_.try_read(tail, kInBytes - in_end_);
      if (n <= 0) {
        if (in_end_ == 0) in_.reset();  // waiting for the next request holds no input buffer
        return n;
      }
      in_end_ += static_cast<size_t>(n);
      starved_ = false;
    }
    ask_socket = true;
    clear_errors();
    size_t got = 0;
    const int result = SSL_read_ex(ssl_, buffer, length, &got);
    if (result == 1) return static_cast<long>(got);
    const int error = SSL_get_error(ssl_, result);
    if (error == SSL_ERROR_ZERO_RETURN) return 0;
    if (error != SSL_ERROR_WANT_READ) {
      ERR_clear_error();
      return -EPROTO;
    }
  }
}

void Stream::release_input() {
  if (in_begin_ != in_end_) return;
  in_.reset();
  in_begin_ = in_end_ = 0;
}

bool Stream::buffered() const {
  return !starved_ && (SSL_pending(ssl_) > 0 || SSL_has_pending(ssl_) || in_end_ > in_begin_);
}

net::Task<bool> Stream::write_all(std::string_view a, std::string_view b, uint64_t deadline_ms) {
  // A small head and body go out as one record.
  thread_local char joined[kRecordPlaintext];
  if (!a.empty() && !b.empty() && a.size() + b.size() <= sizeof joined) {
    std::memcpy(joined, a.data(), a.size());
    std::memcpy(joined + a.size(), b.data(), b.size());
    a = {joined, a.size() + b.size()};
    b = {};
  }
  for (std::string_view part : {a, b}) {
    while (!part.empty()) {
      const size_t n = std::min(part.size(), kRecordPlaintext);
      size_t written = 0;
      clear_errors();
      if (SSL_write_ex(ssl_, part.data(), n, &written) != 1) {
        ERR_clear_error();
        co_return false;
      }
      part.remove_prefix(written);
      if (out_.size() >= kFlushBytes && !co_await flush(deadline_ms)) co_return false;
    }
  }
  co_return co_await flush(deadline_ms);
}

net::Task<void> Stream::close(uint64_t deadline_ms) {
  clear_errors();
  SSL_shutdown(ssl_);
  ERR_clear_error();
  if (!out_.empty()) co_await flush(deadline_ms);
}

}  // namespace usher::tls
