// The cluster's session-ticket keys (tls/tickets.h, ClusterTicketKeys), kept by the cluster
// thread.
#include <openssl/rand.h>

#include <algorithm>
#include <cstring>

#include "cluster/service.h"
#include "tls/tickets.h"

namespace usher::cluster {

namespace {

constexpr uint64_t kRefreshMs = 5000;
constexpr uint64_t kRetryMs = 500;

}  // namespace

// Each period's key is made once, by whichever instance asks first (SET NX), and kept for the
// three periods a ring holds it; every instance then reads the same three keys. Asked again at
// each period's start and every few seconds, so a Redis that lost them gets new ones.
void Service::keep_ticket_keys(uint64_t now_ms) {
  if (ticket_periods_.empty() || !link_.connected() || now_ms < next_tickets_ms_) return;
  const std::time_t now = std::time(nullptr);
  uint64_t next = now_ms + kRefreshMs;
  for (std::time_t period : ticket_periods_) {
    if (!fetch_ticket_keys(period, now)) {
      next = now_ms + kRetryMs;
      break;
    }
    const std::time_t until_next = period - now % period;
    next = std::min<uint64_t>(next, now_ms + static_cast<uint64_t>(until_next) * 1000 + 50);
  }
  next_tickets_ms_ = next;
}

bool Service::fetch_ticket_keys(std::time_t period, std::time_t now) {
  const int64_t index = now / period;
  std::string keys[3];
  unsigned char fresh[3][tls::TicketKey::kBytes];
  // Made before anything is sent: a pipeline left half-read would hand its replies to the asks
  // that follow.
  if (RAND_bytes(&fresh[0][0], sizeof fresh) != 1) return false;
  const std::string lifetime_ms = std::to_string((3 * period + 60) * 1000);
  for (int i = 0; i < 3; ++i) {
    keys[i] = settings_.key_prefix + "tls:tickets:" + std::to_string(period) + ":" +
              std::to_string(index - 1 + i);
    link_.append({"SET", keys[i],
                  std::string_view(reinterpret_cast<const char*>(fresh[i]), sizeof fresh[i]), "NX",
                  "PX", lifetime_ms});
  }
  for (int i = 0; i < 3; ++i) link_.append({"GET", keys[i]});
  round_trips_.fetch_add(1, std::memory_order_relaxed);
  tls::ClusterTicketKeys::Set set{.index = index, .keys = {}};
  bool whole = true;
  for (int i = 0; i < 6; ++i) {
    Reply reply = link_.next_reply();
    if (!reply) {
      set_up(false, link_.error());
      return false;
    }
    if (i < 3) continue;
    if (reply->type != REDIS_REPLY_STRING || reply->len != tls::TicketKey::kBytes) {
      whole = false;
      continue;
    }
    std::memcpy(&set.keys[i - 3], reply->str, tls::TicketKey::kBytes);
  }
  if (whole) tls::cluster_ticket_keys().publish(period, set);
  return whole;
}

}  // namespace usher::cluster
