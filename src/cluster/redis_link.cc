#include "cluster/redis_link.h"

#include <sys/time.h>

namespace usher::cluster {

namespace {

timeval to_timeval(std::chrono::milliseconds t) {
  return {.tv_sec = static_cast<time_t>(t.count() / 1000),
          .tv_usec = static_cast<suseconds_t>(t.count() % 1000 * 1000)};
}

}  // namespace

std::string RedisLink::connect(const Address& address) {
  close();
  const timeval tv = to_timeval(timeout_);
  char host[INET6_ADDRSTRLEN + 1];
  host[format_ip(address.sockaddr_ptr(), host, sizeof host - 1)] = '\0';
  redisContext* c = redisConnectWithTimeout(host, address.port(), tv);
  if (!c) return error_ = "cannot allocate a Redis connection";
  context_.reset(c);
  if (c->err) {
    error_ = c->errstr;
    close();
    return error_;
  }
  if (redisSetTimeout(c, tv) != REDIS_OK) {
    error_ = c->errstr;
    close();
    return error_;
  }
  error_.clear();
  return {};
}

void RedisLink::append(const std::vector<std::string_view>& args) {
  if (!context_) return;
  std::vector<const char*> argv;
  std::vector<size_t> lengths;
  argv.reserve(args.size());
  lengths.reserve(args.size());
  for (std::string_view a : args) {
    argv.push_back(a.data());
    lengths.push_back(a.size());
  }
  if (redisAppendCommandArgv(context_.get(), static_cast<int>(argv.size()), argv.data(),
                             lengths.data()) != REDIS_OK) {
    error_ = context_->errstr;
    close();
  }
}

Reply RedisLink::next_reply() {
  if (!context_) return nullptr;
  void* raw = nullptr;
  if (redisGetReply(context_.get(), &raw) != REDIS_OK || !raw) {
    error_ = context_->err ? context_->errstr : "no reply";
    close();
    return nullptr;
  }
  return Reply(static_cast<redisReply*>(raw));
}

Reply RedisLink::command(const std::vector<std::string_view>& args) {
  append(args);
  return next_reply();
}

}  // namespace usher::cluster
