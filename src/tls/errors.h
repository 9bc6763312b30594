#pragma once
// What the TLS room says about OpenSSL's errors and where in a configuration they belong.
#include <openssl/err.h>

#include <string>

#include "config/config.h"

namespace usher::tls {

// The oldest queued OpenSSL error, as text; the queue is emptied.
inline std::string openssl_error() {
  unsigned long code = ERR_get_error();
  ERR_clear_error();
  if (code == 0) return "unknown error";
  char text[256];
  ERR_error_string_n(code, text, sizeof text);
  return text;
}

}  // namespace usher::tls
