// Sessions as Redis hashes `session:<id>` {user, visits} with a TTL. hiredis encodes commands and
// parses replies; the bytes travel over usher's non-blocking sockets, so a slow or dead Redis
// suspends only the requests that wait for it, each for at most the configured timeout.
#include <hiredis/hiredis.h>
#include <spdlog/spdlog.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "net/socket.h"
#include "session_store.h"

namespace session_app {

using usher::Error;
using usher::Expected;
using usher::net::Task;

namespace {

struct ReplyFree {
  void operator()(redisReply* reply) const { freeReplyObject(reply); }
};
using Reply = std::unique_ptr<redisReply, ReplyFree>;

struct ReaderFree {
  void operator()(redisReader* reader) const { redisReaderFree(reader); }
};

using Command = std::vector<std::string>;

// Counts a visit only if the session exists, atomically, in one round trip.
constexpr const char* kVisitScript = R"(
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
local visits = redis.call('HINCRBY', KEYS[1], 'visits', 1)
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return {redis.call('HGET', KEYS[1], 'user'), visits})";

struct Connection {
  Connection(usher::net::Reactor& reactor, int fd)
      : socket(reactor, fd), reader(redisReaderCreate()) {}
  usher::net::Socket socket;
  std::unique_ptr<redisReader, ReaderFree> reader;
};

class RedisStore final : public SessionStore {
 public:
  RedisStore(usher::net::Reactor& reactor, const usher::Address& redis, uint64_t timeout_ms,
             uint64_t ttl_ms)
      : reactor_(reactor), redis_(redis), timeout_ms_(timeout_ms), ttl_ms_(ttl_ms) {}

  Task<Expected<std::string>> create(std::string user) override {
    std::string id = new_session_id();
    const std::string key = "session:" + id;
    std::vector<Command> commands{{"HSET", key, "user", user, "visits", "0"},
                                  {"PEXPIRE", key, std::to_string(ttl_ms_)}};
    auto replies = co_await call(std::move(commands));
    if (!replies) co_return replies.error();
    co_return id;
  }

  Task<Expected<std::optional<Session>>> visit(std::string id) override {
    std::vector<Command> commands{
        {"EVAL", kVisitScript, "1", "session:" + id, std::to_string(ttl_ms_)}};
    auto replies = co_await call(std::move(commands));
    if (!replies) co_return replies.error();
    const redisReply* reply = replies->front().get();
    if (reply->type == REDIS_REPLY_NIL) co_return std::optional<Session>{};
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
        reply->element[0]->type != REDIS_REPLY_STRING) {
      co_return Error{"redis: unexpected reply to the visit script"};
    }
    co_return std::optional<Session>{Session{
        std::string(reply->element[0]->str, reply->element[0]->len), reply->element[1]->integer}};
  }

  Task<Expected<bool>> remove(std::string id) override {
    std::vector<Command> commands{{"DEL", "session:" + id}};
    auto replies = co_await call(std::move(commands));
    if (!replies) co_return replies.error();
    co_return replies->front()->integer > 0;
  }

 private:
  // Sends the commands pipelined and collects one reply each, all within the timeout.
  Task<Expected<std::vector<Reply>>> call(std::vector<Command> commands) {
    const uint64_t deadline = reactor_.now_ms() + timeout_ms_;
    auto connection = co_await take_connection(deadline);
    if (!connection) co_return report(connection.error());
    auto replies = co_await exchange(**connection, commands, deadline);
    if (!replies) co_return report(replies.error());
    if (idle_.size() < kMaxIdle) idle_.push_back(std::move(*connection));
    if (!reachable_) spdlog::info("redis {} answers again", redis_.to_string());
    reachable_ = true;
    co_return replies;
  }

  // An idle connection if one is still open (a restarted Redis closed the old ones), else a new
  // one.
  Task<Expected<std::unique_ptr<Connection>>> take_connection(uint64_t deadline) {
    while (!idle_.empty()) {
      std::unique_ptr<Connection> connection = std::move(idle_.back());
      idle_.pop_back();
      char probe;
      if (connection->socket.try_read(&probe, 1) == -EAGAIN) co_return connection;
    }
    int fd = usher::net::Socket::open_tcp(redis_);
    if (fd < 0) co_return Error{std::string("socket: ") + std::strerror(errno)};
    auto connection = std::make_unique<Connection>(reactor_, fd);
    long connected = co_await connection->socket.connect(redis_, deadline);
    if (connected < 0) co_return Error{describe("connect", connected)};
    co_return connection;
  }

  Task<Expected<std::vector<Reply>>> exchange(Connection& connection,
                                              const std::vector<Command>& commands,
                                              uint64_t deadline) {
    std::string out = encode(commands);
    for (size_t sent = 0; sent < out.size();) {
      long n = co_await connection.socket.write(out.data() + sent, out.size() - sent, deadline);
      if (n < 0) co_return Error{describe("send", n)};
      sent += static_cast<size_t>(n);
    }
    std::vector<Reply> replies;
    char buffer[4096];
    while (replies.size() < commands.size()) {
      void* parsed = nullptr;
      if (redisReaderGetReply(connection.reader.get(), &parsed) != REDIS_OK) {
        co_return Error{"redis: malformed reply"};
      }
      if (parsed != nullptr) {
        replies.emplace_back(static_cast<redisReply*>(parsed));
        if (replies.back()->type == REDIS_REPLY_ERROR) {
          co_return Error{"redis: " + std::string(replies.back()->str, replies.back()->len)};
        }
        continue;
      }
      long n = co_await connection.socket.read(buffer, sizeof buffer, deadline);
      if (n <= 0) co_return Error{n == 0 ? "redis closed the connection" : describe("recv", n)};
      redisReaderFeed(connection.reader.get(), buffer, static_cast<size_t>(n));
    }
    co_return replies;
  }

  static std::string encode(const std::vector<Command>& commands) {
    std::string out;
    for (const Command& command : commands) {
      std::vector<const char*> argv;
      std::vector<size_t> lengths;
      for (const std::string& arg : command) {
        argv.push_back(arg.data());
        lengths.push_back(arg.size());
      }
      char* encoded = nullptr;
      int length = redisFormatCommandArgv(&encoded, static_cast<int>(argv.size()), argv.data(),
                                          lengths.data());
      out.append(encoded, static_cast<size_t>(length));
      redisFreeCommand(encoded);
    }
    return out;
  }

  std::string describe(const char* what, long result) const {
    if (result == -ETIMEDOUT) {
      return "redis " + redis_.to_string() + ": no answer within " + std::to_string(timeout_ms_) +
             " ms";
    }
    return "redis " + redis_.to_string() + ": " + what + ": " +
           std::strerror(static_cast<int>(-result));
  }

  // Logs the first failure of an outage, not every request's.
  Error report(const Error& error) {
    if (reachable_) spdlog::warn("{}; answering 503 until it is back", error.message);
    reachable_ = false;
    return error;
  }

  static constexpr size_t kMaxIdle = 16;
  usher::net::Reactor& reactor_;
  usher::Address redis_;
  uint64_t timeout_ms_;
  uint64_t ttl_ms_;
  std::vector<std::unique_ptr<Connection>> idle_;
  bool reachable_ = true;
};

}  // namespace

std::unique_ptr<SessionStore> make_redis_store(usher::net::Reactor& reactor,
                                               const usher::Address& redis, uint64_t timeout_ms,
                                               uint64_t ttl_ms) {
  return std::make_unique<RedisStore>(reactor, redis, timeout_ms, ttl_ms);
}

}  // namespace session_app
