// libFuzzer target for usher's TLS termination: a listener's server contexts (tls::ServerContext,
// with its SNI selection, ALPN choice, ticket keys and client-certificate checks) and the
// tls::Stream a client connection runs on (handshake, plain-HTTP detection, reads, writes,
// close), fed a client's bytes. The stream runs on a reactor of this file whose operations
// complete at once from the input, so a whole connection runs inline, with no socket and no
// event loop. Nothing is asserted beyond no crash, no leak, and that a connection never
// completes a handshake below the listener's minimum version.
//
// Input: byte 0 is how the client's bytes arrive (0: all at once; n: n bytes per read), byte 1
// the connection's options (kFlag* below), the rest the client's bytes.
//
// OpenSSL's randomness is made deterministic (OpenSSL's own fuzzers build it so): the server's
// random stream restarts at each input, so its flight is the same for the same client bytes, and
// a recorded client flight (ClientHello, then Finished computed against this very server, then
// requests) completes the handshake and takes the fuzzer into the reads and writes that follow.
// `TLS_FUZZ_WRITE_SEEDS=DIR build-fuzz/fuzz/tls_fuzz` records such flights (fuzz/corpus/tls).
#define OPENSSL_SUPPRESS_DEPRECATED  // RAND_set_rand_method: one call covers every draw

#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "net/reactor.h"
#include "net/socket.h"
#include "net/task.h"
#include "tls/context.h"
#include "tls/stream.h"

namespace {

using namespace usher;

// Connection options, byte 1 of the input.
constexpr uint8_t kFlagStrictListener = 1 << 0;  // TLS 1.3 only, client certificates asked for
constexpr uint8_t kFlagTryRead = 1 << 1;         // requests read with try_read (else read)
constexpr uint8_t kFlagAgain = 1 << 2;           // try_read finds nothing every other time
constexpr uint8_t kFlagShortWrites = 1 << 3;     // the socket takes at most 700 bytes a write
constexpr uint8_t kFlagLargeAnswers = 1 << 4;    // 70 KiB answers: many records, flushes midway
constexpr uint8_t kFlagEndShift = 5;             // bits 5-6: EOF, reset or timeout at the end

// --- Deterministic randomness -------------------------------------------------------------------

// splitmix64: fast, and any fixed sequence will do; two streams so that the seed recorder's
// client draws do not shift the server's.
struct RandomStream {
  uint64_t state = 0;
  uint64_t next() {
    uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
};
RandomStream server_random;
RandomStream client_random;
RandomStream* drawing = &server_random;

int random_bytes(unsigned char* out, int length) {
  for (int i = 0; i < length; i += 8) {
    const uint64_t word = drawing->next();
    std::memcpy(out + i, &word, static_cast<size_t>(std::min(8, length - i)));
  }
  return 1;
}
int random_status() {
  return 1;
}
int random_ignore(const void*, int) {
  return 1;
}
int random_add(const void*, int, double) {
  return 1;
}
const RAND_METHOD kRandom = {random_ignore, random_bytes, nullptr,
                             random_add,    random_bytes, random_status};

// --- Certificates, made in-process
// ----------------------------------------------------------------

struct Files {
  std::string cert, key;
};

// A self-signed P-256 certificate for `names` (subjectAltName DNS), valid from 2024 to 2099 so
// that it is the same certificate whenever the fuzzer runs.
Files make_certificate(const std::string& folder, const std::string& stem,
                       const std::vector<std::string>& names) {
  EVP_PKEY* key = EVP_EC_gen("P-256");
  X509* cert = X509_new();
  X509_set_version(cert, X509_VERSION_3);
  ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
  ASN1_TIME_set_string(X509_getm_notBefore(cert), "20240101000000Z");
  ASN1_TIME_set_string(X509_getm_notAfter(cert), "20991231235959Z");
  X509_NAME* subject = X509_get_subject_name(cert);
  X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(names[0].c_str()), -1, -1, 0);
  X509_set_issuer_name(cert, subject);
  X509_set_pubkey(cert, key);
  std::string alt;
  for (const std::string& name : names) alt += (alt.empty() ? "DNS:" : ",DNS:") + name;
  X509V3_CTX v3;
  X509V3_set_ctx_nodb(&v3);
  X509V3_set_ctx(&v3, cert, cert, nullptr, nullptr, 0);
  X509_EXTENSION* extension =
      X509V3_EXT_conf_nid(nullptr, &v3, NID_subject_alt_name, const_cast<char*>(alt.c_str()));
  X509_add_ext(cert, extension, -1);
  X509_EXTENSION_free(extension);
  X509_sign(cert, key, EVP_sha256());

  Files files{folder + "/" + stem + ".pem", folder + "/" + stem + ".key"};
  FILE* out = std::fopen(files.cert.c_str(), "w");
  PEM_write_X509(out, cert);
  std::fclose(out);
  out = std::fopen(files.key.c_str(), "w");
  PEM_write_PrivateKey(out, key, nullptr, nullptr, 0, nullptr, nullptr);
  std::fclose(out);
  X509_free(cert);
  EVP_PKEY_free(key);
  return files;
}

// --- The listeners ------------------------------------------------------------------------------

struct Setup {
  tls::Library library;
  // [0]: TLS 1.2 and 1.3, two certificates (SNI: exact, wildcard, default);
  // [1]: TLS 1.3 only, client certificates asked for (not required) and checked against a CA.
  std::shared_ptr<const tls::ServerContext> listeners[2];
  SSL_CTX* session_contexts[2] = {};  // where each caches sessions: emptied at each input
  Files client;                       // for the seed recorder
  std::string folder;
  std::vector<Files> files;
  void remove_files() {
    for (const Files& f : files) unlink(f.cert.c_str()), unlink(f.key.c_str());
    rmdir(folder.c_str());
  }
};

std::shared_ptr<const tls::ServerContext> build(const Setup& setup,
                                                const std::vector<Files>& certificates,
                                                const Files* client_ca) {
  config::Listener listener;
  listener.name = "fuzz";
  config::ListenerTls tls;
  for (const Files& files : certificates)
    tls.certificates.push_back({files.cert, files.key, "", {}});
  // One key period for decades: a recorded resumption opens its ticket whenever the fuzzer runs.
  tls.session_tickets.rotate = std::chrono::milliseconds(int64_t{1} << 41);
  if (client_ca) {
    tls.min_version = config::ListenerTls::Version::k13;
    tls.client_auth = config::ListenerTls::ClientAuth{client_ca->cert, false};
  }
  listener.tls = std::move(tls);
  const tls::Secret secret(48, 0x5a);
  auto built = tls::ServerContext::build(listener, "fuzz.yaml", setup.library.get(), secret);
  if (!built) {
    std::fprintf(stderr, "tls_fuzz: %s\n", built.error().message.c_str());
    std::abort();
  }
  return std::move(*built);
}

Setup& setup() {
  static Setup* made = [] {
    auto* s = new Setup();
    RAND_set_rand_method(&kRandom);
    server_random.state = 1;
    char folder[] = "/tmp/usher-tls-fuzz-XXXXXX";
    if (!mkdtemp(folder)) std::abort();
    const std::vector<Files> certificates = {make_certificate(folder, "default", {"default.test"}),
                                             make_certificate(folder, "a", {"a.test", "*.a.test"})};
    s->client = make_certificate(folder, "client", {"client.test"});
    s->folder = folder;
    s->files = certificates;
    s->files.push_back(s->client);
    s->listeners[0] = build(*s, certificates, nullptr);
    s->listeners[1] = build(*s, certificates, &s->client);
    for (int i = 0; i < 2; ++i) {
      SSL* ssl = s->listeners[i]->new_connection();
      s->session_contexts[i] = SSL_get_SSL_CTX(ssl);
      SSL_free(ssl);
    }
    // The seed recorder's client still needs its certificate's files.
    if (!std::getenv("TLS_FUZZ_WRITE_SEEDS")) s->remove_files();
    return s;
  }();
  return *made;
}

// A server connection as the listener makes one, on a server that draws the same random bytes
// and holds no session from an earlier input.
SSL* new_server_connection(int listener) {
  Setup& s = setup();
  server_random.state = 2;
  drawing = &server_random;
  SSL_CTX_flush_sessions(s.session_contexts[listener], INT64_MAX);
  return s.listeners[listener]->new_connection();
}

// --- A reactor whose socket is the input --------------------------------------------------------

class Peer final : public net::Reactor {
 public:
  Peer(std::string_view bytes, size_t piece, uint8_t flags)
      : bytes_(bytes), piece_(piece ? piece : bytes.size() + 1), flags_(flags) {}

  void attach(net::Socket&) override {}
  void detach(net::Socket&) override {}
  bool submit(net::IoOp& op) override {
    switch (op.kind) {
      case net::OpKind::kRead:
        op.result = take(op.buffer, op.length);
        break;
      case net::OpKind::kWrite:
        op.result = static_cast<long>((flags_ & kFlagShortWrites) ? std::min<size_t>(op.length, 700)
                                                                  : op.length);
        break;
      default:
        op.result = 0;
    }
    return true;  // done at once: the awaiting coroutine never suspends
  }
  void cancel(net::Socket&) override {}
  void end_sleep(net::IoOp&) override {}  // sleeps complete at once here
  void run(const Hooks&) override {}
  void stop() override {}
  void wake() override {}
  uint64_t now_ms() const override { return ++now_; }
  bool peer_closed(net::Socket&) override { return bytes_.empty(); }
  long try_read(net::Socket&, char* buffer, size_t length) override {
    if ((flags_ & kFlagAgain) && (again_ = !again_)) return -EAGAIN;
    return take(buffer, length);
  }
  void send_datagrams(std::span<net::Datagram> datagrams) override {
    for (net::Datagram& d : datagrams) d.result = -EBADF;  // a TLS stream sends none
  }
  const char* name() const override { return "fuzz"; }

 private:
  long take(char* buffer, size_t length) {
    if (bytes_.empty()) {
      static constexpr long kEnds[] = {0, -ECONNRESET, -ETIMEDOUT, 0};
      return kEnds[(flags_ >> kFlagEndShift) & 3];
    }
    const size_t n = std::min({length, piece_, bytes_.size()});
    std::memcpy(buffer, bytes_.data(), n);
    bytes_.remove_prefix(n);
    return static_cast<long>(n);
  }

  std::string_view bytes_;
  size_t piece_;
  uint8_t flags_;
  bool again_ = false;
  mutable uint64_t now_ = 0;
};

// TLS_FUZZ_TRACE=1: each connection's outcome on stderr, to check that recorded seeds still
// complete their handshakes (`tls_fuzz -runs=0 fuzz/corpus/tls`).
const bool trace = std::getenv("TLS_FUZZ_TRACE") != nullptr;

// What a client connection does with the stream: the handshake, what the proxy then asks of it,
// and requests answered until the client stops.
net::Task<void> serve(tls::Stream& tls, uint8_t flags, bool& done) {
  constexpr uint64_t kDeadline = UINT64_MAX / 2;
  const tls::HandshakeFailure failure = co_await tls.handshake(kDeadline);
  const char* outcome = tls::handshake_failure_name(failure);
  if (failure != tls::HandshakeFailure::kNone) {
    if (trace) std::fprintf(stderr, "handshake failed: %s\n", outcome);
    (void)tls.verify_result();
    (void)tls.error_reason();
    done = true;
    co_return;
  }
  const std::string_view version = tls.version();
  if (version != "TLSv1.3" && (version != "TLSv1.2" || (flags & kFlagStrictListener))) {
    __builtin_trap();  // below the listener's min_version
  }
  (void)tls.cipher();
  (void)tls.server_name();
  (void)tls.client_subject();
  static char in[32 * 1024];
  static const std::string large(70 * 1024, 'x');
  const std::string head = "HTTP/1.1 200 OK\r\nContent-Length: ";
  int requests = 0;
  while (true) {
    const long n = (flags & kFlagTryRead) ? tls.try_read(in, sizeof in)
                                          : co_await tls.read(in, sizeof in, kDeadline);
    if (n == -EAGAIN) continue;
    if (n <= 0) break;
    ++requests;
    const std::string_view body =
        (flags & kFlagLargeAnswers) ? std::string_view(large) : std::string_view(in, n);
    if (!co_await tls.write_all(head + std::to_string(body.size()) + "\r\n\r\n", body, kDeadline))
      break;
    if (!tls.buffered()) tls.release_input();  // as a parked upstream connection does
  }
  if (trace) {
    std::fprintf(stderr, "%.*s %.*s sni=%.*s requests=%d\n", static_cast<int>(version.size()),
                 version.data(), static_cast<int>(tls.cipher().size()), tls.cipher().data(),
                 static_cast<int>(tls.server_name().size()), tls.server_name().data(), requests);
  }
  co_await tls.close(kDeadline);
  done = true;
}

// --- Seeds: client flights recorded against this server -----------------------------------------

struct Client {
  SSL_CTX* ctx = nullptr;
  std::string server_name;
  int max_version = 0;
  bool certificate = false;
  bool key_update = false;
  std::vector<unsigned char> alpn;  // wire format
  SSL_SESSION* session = nullptr;
};

void move(BIO* from, BIO* to, std::string* record) {
  char buffer[16384];
  for (int n; (n = BIO_read(from, buffer, sizeof buffer)) > 0;) {
    BIO_write(to, buffer, n);
    if (record) record->append(buffer, static_cast<size_t>(n));
  }
}

// The client's bytes of one connection to `listener`; the session it got, when asked.
std::string record(int listener, const Client& spec, SSL_SESSION** session_out) {
  drawing = &client_random;
  SSL* client = SSL_new(spec.ctx);
  BIO *client_in = BIO_new(BIO_s_mem()), *client_out = BIO_new(BIO_s_mem());
  SSL_set_bio(client, client_in, client_out);
  SSL_set_connect_state(client);
  if (!spec.server_name.empty()) SSL_set_tlsext_host_name(client, spec.server_name.c_str());
  if (spec.max_version) SSL_set_max_proto_version(client, spec.max_version);
  if (!spec.alpn.empty())
    SSL_set_alpn_protos(client, spec.alpn.data(), static_cast<unsigned>(spec.alpn.size()));
  if (spec.certificate) {
    SSL_use_certificate_file(client, setup().client.cert.c_str(), SSL_FILETYPE_PEM);
    SSL_use_PrivateKey_file(client, setup().client.key.c_str(), SSL_FILETYPE_PEM);
  }
  if (spec.session) SSL_set_session(client, spec.session);

  SSL* server = new_server_connection(listener);
  BIO *server_in = BIO_new(BIO_s_mem()), *server_out = BIO_new(BIO_s_mem());
  SSL_set_bio(server, server_in, server_out);

  std::string sent;
  bool client_done = false, server_done = false;
  for (int round = 0; round < 10 && !(client_done && server_done); ++round) {
    drawing = &client_random;
    client_done = client_done || SSL_do_handshake(client) == 1;
    move(client_out, server_in, &sent);
    drawing = &server_random;
    server_done = server_done || SSL_do_handshake(server) == 1;
    move(server_out, client_in, nullptr);
  }
  if (!client_done || !server_done) {
    std::fprintf(stderr, "tls_fuzz: a seed's handshake failed\n");
    std::abort();
  }
  drawing = &client_random;
  char scratch[4096];
  size_t got;
  SSL_read_ex(client, scratch, sizeof scratch, &got);  // takes TLS 1.3 tickets
  const std::string request =
      "GET / HTTP/1.1\r\nHost: " + (spec.server_name.empty() ? "fuzz" : spec.server_name) +
      "\r\n\r\n";
  SSL_write(client, request.data(), static_cast<int>(request.size()));
  if (spec.key_update) {
    SSL_key_update(client, SSL_KEY_UPDATE_REQUESTED);
    SSL_write(client, request.data(), static_cast<int>(request.size()));
  }
  SSL_shutdown(client);
  move(client_out, server_in, &sent);
  if (session_out) *session_out = SSL_get1_session(client);
  SSL_free(client);
  SSL_free(server);
  return sent;
}

void write_seed(const std::string& folder, const char* name, uint8_t flags,
                const std::string& bytes) {
  const std::string path = folder + "/" + name;
  FILE* out = std::fopen(path.c_str(), "wb");
  const unsigned char header[2] = {0, flags};
  std::fwrite(header, 1, 2, out);
  std::fwrite(bytes.data(), 1, bytes.size(), out);
  std::fclose(out);
  std::printf("%s: %zu bytes\n", path.c_str(), bytes.size() + 2);
}

void write_seeds(const std::string& folder) {
  setup();
  client_random.state = 7;
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  const std::vector<unsigned char> http11 = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
  const std::vector<unsigned char> h2 = {2, 'h', '2'};

  Client spec{ctx, "a.test", 0, false, true, http11, nullptr};
  SSL_SESSION* session = nullptr;
  write_seed(folder, "tls13_sni_alpn_key_update", 0, record(0, spec, &session));
  spec.key_update = false;
  spec.session = session;
  write_seed(folder, "tls13_resumed", kFlagTryRead, record(0, spec, nullptr));
  SSL_SESSION_free(session);

  spec = {ctx, "www.a.test", TLS1_2_VERSION, false, false, http11, nullptr};
  write_seed(folder, "tls12_wildcard", kFlagLargeAnswers, record(0, spec, &session));
  spec.session = session;
  write_seed(folder, "tls12_resumed", kFlagShortWrites, record(0, spec, nullptr));
  SSL_SESSION_free(session);

  spec = {ctx, "", TLS1_2_VERSION, false, false, h2, nullptr};
  write_seed(folder, "tls12_no_sni_h2_only", kFlagTryRead | kFlagAgain, record(0, spec, nullptr));

  spec = {ctx, "default.test", 0, true, false, http11, nullptr};
  write_seed(folder, "tls13_client_certificate", kFlagStrictListener, record(1, spec, nullptr));

  // Refused ones: the ClientHello is what counts.
  SSL* hello = SSL_new(ctx);
  SSL_set_max_proto_version(hello, TLS1_2_VERSION);
  SSL_set_tlsext_host_name(hello, "a.test");
  BIO* out = BIO_new(BIO_s_mem());
  SSL_set_bio(hello, BIO_new(BIO_s_mem()), out);
  SSL_connect(hello);
  char* data = nullptr;
  const long length = BIO_get_mem_data(out, &data);
  write_seed(folder, "tls12_hello_to_tls13_only", kFlagStrictListener,
             std::string(data, static_cast<size_t>(length)));
  SSL_free(hello);

  SSL_CTX* old = SSL_CTX_new(TLS_client_method());
  SSL_CTX_set_security_level(old, 0);  // OpenSSL 3 offers TLS 1.0 at level 0 only
  SSL_CTX_set_min_proto_version(old, TLS1_VERSION);
  SSL_CTX_set_max_proto_version(old, TLS1_VERSION);
  hello = SSL_new(old);
  out = BIO_new(BIO_s_mem());
  SSL_set_bio(hello, BIO_new(BIO_s_mem()), out);
  SSL_connect(hello);
  data = nullptr;
  const long old_length = BIO_get_mem_data(out, &data);
  write_seed(folder, "tls10_hello", 0, std::string(data, static_cast<size_t>(old_length)));
  SSL_free(hello);
  SSL_CTX_free(old);

  write_seed(folder, "plain_http", 0, "GET / HTTP/1.1\r\nHost: a.test\r\n\r\n");
  SSL_CTX_free(ctx);
  setup().remove_files();
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  if (const char* folder = std::getenv("TLS_FUZZ_WRITE_SEEDS")) {
    write_seeds(folder);
    std::exit(0);
  }
  setup();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const uint8_t flags = data[1];
  Peer peer(std::string_view(reinterpret_cast<const char*>(data + 2), size - 2), data[0], flags);
  net::Socket socket(peer, -1);  // no descriptor: every operation is the peer's
  {
    tls::Stream stream(new_server_connection((flags & kFlagStrictListener) ? 1 : 0), socket);
    bool done = false;
    net::spawn(serve(stream, flags, done));
    if (!done) __builtin_trap();  // nothing here suspends: the connection must have ended
  }
  return 0;
}
