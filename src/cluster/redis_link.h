#pragma once
// One blocking connection to Redis with short timeouts, for the cluster thread only (workers
// never wait on it). Commands are pipelined: append several, then read their replies in order.
// Any I/O error or timeout closes the link; the owner decides when to connect again.
#include <hiredis/hiredis.h>

#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/address.h"

namespace usher::cluster {

struct ReplyDeleter {
  void operator()(redisReply* reply) const { freeReplyObject(reply); }
};
using Reply = std::unique_ptr<redisReply, ReplyDeleter>;

class RedisLink {
 public:
  explicit RedisLink(std::chrono::milliseconds timeout) : timeout_(timeout) {}

  // Connects (closing any link first); the error, or empty.
  std::string connect(const Address& address);
  // `why` becomes error(): what made the owner give the link up.
  void close(std::string why = {}) {
    context_.reset();
    if (!why.empty()) error_ = std::move(why);
  }
  bool connected() const { return context_ != nullptr; }

  void append(const std::vector<std::string_view>& args);
  // The next pipelined reply, or null after an I/O error or timeout (the link is then closed,
  // and `error()` says why).
  Reply next_reply();
  // One command and its reply.
  Reply command(const std::vector<std::string_view>& args);
  const std::string& error() const { return error_; }

 private:
  struct ContextDeleter {
    void operator()(redisContext* c) const { redisFree(c); }
  };
  std::chrono::milliseconds timeout_;
  std::unique_ptr<redisContext, ContextDeleter> context_;
  std::string error_;
};

}  // namespace usher::cluster
