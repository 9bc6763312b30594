#include "tls/tickets.h"

#include <openssl/core_names.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <cstring>
#include <fstream>
#include <iterator>

namespace usher::tls {

namespace {

constexpr size_t kMinSecret = 32;
constexpr size_t kMaxSecret = 4096;

}  // namespace

Expected<Secret> read_ticket_secret(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) return Error{"cannot read session ticket key file " + path};
  Secret secret;
  char byte;
  while (secret.size() <= kMaxSecret && file.get(byte))
    secret.push_back(static_cast<unsigned char>(byte));
  if (secret.size() < kMinSecret || secret.size() > kMaxSecret) {
    return Error{"session ticket key file " + path + " must hold 32 to 4096 random bytes (" +
                 "`openssl rand -out FILE 48`), not " + std::to_string(secret.size())};
  }
  return secret;
}

const Secret& process_ticket_secret() {
  static const Secret secret = [] {
    Secret s(48);
    RAND_bytes(s.data(), static_cast<int>(s.size()));
    return s;
  }();
  return secret;
}

void ClusterTicketKeys::publish(std::time_t period, const Set& set) {
  std::lock_guard lock(mutex_);
  Set& old = sets_[period];
  if (old.index == set.index && std::memcmp(old.keys, set.keys, sizeof set.keys) == 0) return;
  old = set;
  version_.fetch_add(1, std::memory_order_release);
}

bool ClusterTicketKeys::get(std::time_t period, Set& out) const {
  std::lock_guard lock(mutex_);
  auto it = sets_.find(period);
  if (it == sets_.end()) return false;
  out = it->second;
  return true;
}

ClusterTicketKeys& cluster_ticket_keys() {
  static ClusterTicketKeys keys;
  return keys;
}

TicketRing::TicketRing(Secret secret, std::time_t period_seconds, OSSL_LIB_CTX* library,
                       bool cluster)
    : secret_(std::move(secret)),
      period_(period_seconds > 0 ? period_seconds : 1),
      cipher_(EVP_CIPHER_fetch(library, "AES-256-CBC", nullptr)),
      cluster_(cluster) {}

TicketRing::~TicketRing() {
  EVP_CIPHER_free(cipher_);
}

// HMAC-SHA256 of the secret over a label, the period and a block number, as an HKDF-expand
// would: 96 bytes, of which the key takes 80.
TicketRing::Key TicketRing::derive(int64_t period) const {
  unsigned char material[96];
  for (unsigned char block = 0; block < 3; ++block) {
    unsigned char input[32] = "usher session ticket key";
    for (int i = 0; i < 8; ++i) input[24 + i] = static_cast<unsigned char>(period >> (56 - 8 * i));
    input[0] ^= block;
    unsigned int length = 32;
    HMAC(EVP_sha256(), secret_.data(), static_cast<int>(secret_.size()), input, sizeof input,
         material + 32 * block, &length);
  }
  Key key;
  std::memcpy(key.name, material, 16);
  std::memcpy(key.hmac, material + 16, 32);
  std::memcpy(key.aes, material + 48, 32);
  return key;
}

void TicketRing::refresh(std::time_t now) {
  const int64_t index = static_cast<int64_t>(now / period_);
  const bool cluster_moved = cluster_ && cluster_ticket_keys().version() != cluster_version_;
  if (index == index_ && !cluster_moved) return;
  if (cluster_ && from_cluster(index)) return;
  if (index == index_) return;  // the cluster's keys moved but do not fit: the ring stays
  for (int i = 0; i < 3; ++i) keys_[i] = derive(index - 1 + i);
  index_ = index;
}

bool TicketRing::from_cluster(int64_t index) {
  // Taken even when the set does not fit: the mutex is then taken again at the next period, not
  // at every handshake.
  cluster_version_ = cluster_ticket_keys().version();
  ClusterTicketKeys::Set set;
  // The cluster thread renews the set at each period's start; one period behind it still
  // holds this period's key as its next one.
  if (!cluster_ticket_keys().get(period_, set) || set.index > index || set.index < index - 1) {
    return false;
  }
  Key keys[3];
  for (int64_t i = 0; i < 3; ++i) {
    const int64_t from = index - 1 + i - (set.index - 1);
    keys[i] = from >= 0 && from < 3 ? set.keys[from] : derive(index - 1 + i);
  }
  std::memcpy(keys_, keys, sizeof keys);
  index_ = index;
  return true;
}

const TicketRing::Key& TicketRing::current(std::time_t now) {
  refresh(now);
  return keys_[1];
}

const TicketRing::Key* TicketRing::find(const unsigned char* name, std::time_t now, bool& renew) {
  refresh(now);
  for (int i = 0; i < 3; ++i) {
    if (std::memcmp(keys_[i].name, name, sizeof keys_[i].name) == 0) {
      renew = i != 1;
      return &keys_[i];
    }
  }
  return nullptr;
}

int TicketRing::callback(SSL* ssl, unsigned char* name, unsigned char* iv, EVP_CIPHER_CTX* cipher,
                         EVP_MAC_CTX* mac, int encrypt) {
  auto* ring = static_cast<TicketRing*>(SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl)));
  if (!ring || !ring->cipher_) return -1;
  const std::time_t now = std::time(nullptr);
  const Key* key = nullptr;
  bool renew = false;
  if (encrypt) {
    key = &ring->current(now);
    std::memcpy(name, key->name, sizeof key->name);
    if (RAND_bytes(iv, EVP_MAX_IV_LENGTH) != 1) return -1;
  } else {
    key = ring->find(name, now, renew);
    if (!key) return 0;  // an unknown or retired key: a full handshake
  }
  char digest[] = "SHA256";
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, const_cast<unsigned char*>(key->hmac),
                                        sizeof key->hmac),
      OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
      OSSL_PARAM_construct_end()};
  if (EVP_MAC_CTX_set_params(mac, params) != 1) return -1;
  const int ok = encrypt ? EVP_EncryptInit_ex(cipher, ring->cipher_, nullptr, key->aes, iv)
                         : EVP_DecryptInit_ex(cipher, ring->cipher_, nullptr, key->aes, iv);
  if (ok != 1) return -1;
  return renew ? 2 : 1;
}

}  // namespace usher::tls
