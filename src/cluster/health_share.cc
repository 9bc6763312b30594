#include "cluster/health_share.h"

namespace usher::cluster {

const char kHealthScript[] = R"lua(
local mine = redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2])
if not mine and redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  mine = true
end
if mine then
  if ARGV[3] ~= '' then redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[2]) end
  return { 1, ARGV[3] }
end
return { 0, redis.call('GET', KEYS[2]) or '' }
)lua";

HealthShare::HealthShare(std::string instance) : instance_(std::move(instance)) {}

bool HealthShare::sync(RedisLink& link, const std::string& script_sha, const std::string& prefix) {
  const std::string lease_ms = std::to_string(kLeaseMs);
  for (const SharedBackend& b : backends_) {
    const int8_t ours = b.health->ours.load();
    link.append({"EVALSHA", script_sha, "2", prefix + "health:lease:" + b.name,
                 prefix + "health:verdict:" + b.name, instance_, lease_ms,
                 ours < 0 ? ""
                 : ours   ? "1"
                          : "0"});
  }
  for (const SharedBackend& b : backends_) {
    Reply reply = link.next_reply();
    if (!reply) {
      probe_everywhere();
      return false;
    }
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
        reply->element[0]->type != REDIS_REPLY_INTEGER ||
        reply->element[1]->type != REDIS_REPLY_STRING) {
      b.health->lease.store(health::SharedHealth::kProbeHere);
      continue;
    }
    const bool mine = reply->element[0]->integer == 1;
    const std::string_view verdict(reply->element[1]->str, reply->element[1]->len);
    b.health->published.store(verdict == "1" ? 1 : verdict == "0" ? 0 : -1);
    b.health->lease.store(mine ? health::SharedHealth::kProbeHere
                               : health::SharedHealth::kProbedElsewhere);
  }
  return true;
}

void HealthShare::probe_everywhere() {
  for (const SharedBackend& b : backends_) b.health->lease.store(health::SharedHealth::kProbeHere);
}

}  // namespace usher::cluster
