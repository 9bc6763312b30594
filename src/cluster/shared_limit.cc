#include "cluster/shared_limit.h"

#include <fmt/format.h>

namespace usher::cluster {

// Redis's own clock, so that instances whose clocks disagree still share one timeline. A TAT
// in the past is the same as now (a full burst). Unspent allowance given back moves the TAT
// back, never before now. Lua numbers are doubles: µs since 1970 stay exact below 2^53 (year
// 2255).
const char kLeaseScript[] = R"lua(
local interval = tonumber(ARGV[1])
local horizon = interval * tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local back = tonumber(ARGV[4])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
if back > 0 then tat = math.max(now, tat - back * interval) end
local room = math.floor((now + horizon - tat) / interval)
local granted = math.max(0, math.min(want, room))
tat = tat + granted * interval
if tat > now then
  redis.call('SET', KEYS[1], string.format('%.0f', tat), 'PX', math.ceil((tat - now) / 1000) + 1000)
else
  redis.call('DEL', KEYS[1])
end
local wait = 0
if granted == 0 then wait = tat - (now + horizon - interval) end
return { granted, wait }
)lua";

SharedLimit::SharedLimit(std::string key_base, double per_second, uint32_t burst)
    : key_base_(std::move(key_base)), policy_(per_second, burst), tables_(kMaxWorkers) {}

LeaseTable& SharedLimit::table(size_t worker) {
  std::unique_ptr<LeaseTable>& t = tables_[worker % kMaxWorkers];
  if (!t) t = std::make_unique<LeaseTable>(policy_, kKeysPerWorker);
  return *t;
}

std::string SharedLimit::redis_key(uint64_t key) const {
  return fmt::format("{}{:016x}", key_base_, key);
}

}  // namespace usher::cluster
