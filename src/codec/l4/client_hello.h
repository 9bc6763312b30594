#pragma once
// A TLS ClientHello read without being consumed: the server name and ALPN protocols a client
// asks for, taken from its first bytes so that a TCP listener can route a TLS connection by SNI
// and pass it through untouched. No sockets, nothing decrypted: a ClientHello is plaintext in
// every TLS version.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace usher::l4 {

// The ClientHello handshake message, its 4-byte header included, may take at most this many
// bytes (one record's worth: browsers with post-quantum key shares send under 2 KiB).
inline constexpr size_t kMaxClientHello = 16 * 1024;
// Records it may be spread over. Some clients split the hello to get past middleboxes that
// read SNI from the first record only; more than this is taken for an attempt to make the peek
// buffer grow (each record costs a 5-byte header).
inline constexpr size_t kMaxClientHelloRecords = 32;
// The most bytes peek_client_hello ever needs for a verdict: a buffer of this size always
// reaches kDone, kError or kNotTls.
inline constexpr size_t kMaxClientHelloPeek = kMaxClientHello + 5 * kMaxClientHelloRecords;

enum class HelloStatus : uint8_t {
  kNeedMore,
  kDone,
  kError,   // TLS, but malformed: the connection should be closed
  kNotTls,  // the first record is no TLS handshake (plain HTTP, an SSL 2.0-style hello)
};

struct HelloPeek {
  HelloStatus status = HelloStatus::kNeedMore;
  std::string server_name;        // the SNI host_name, lower-cased; empty when the client sent none
  std::vector<std::string> alpn;  // the ALPN extension's protocols, in the client's order
  std::string error;              // when kError: "ClientHello: byte N: why"
};

// Reads the ClientHello at the start of `bytes`, all a client has sent so far (call again with
// more on kNeedMore). The record framing and the handshake header are checked as they arrive;
// the hello's body is parsed once it is whole, so a partial hello costs a walk over at most
// kMaxClientHelloRecords record headers, not over its bytes: a client trickling a byte at a
// time cannot make the proxy rescan them. Bytes after the hello are not looked at.
HelloPeek peek_client_hello(std::string_view bytes);

}  // namespace usher::l4
