#include "app.h"

#include <nlohmann/json.hpp>

#include <cctype>

#include "page.h"
#include "route/fields.h"

namespace session_app {

using usher::net::Task;
using json = nlohmann::json;

namespace {

constexpr std::string_view kCookie = "sid";

Task<Response> ready(Response response) {
  co_return response;
}

bool valid_user(std::string_view user) {
  if (user.empty() || user.size() > 32) return false;
  for (char c : user) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-' && c != '.') {
      return false;
    }
  }
  return true;
}

class App {
 public:
  App(std::string server, SessionStore& store, uint64_t max_age_s)
      : server_(std::move(server)), store_(store), max_age_s_(max_age_s) {}

  // Not a coroutine: hands back the chosen handler's task (or an answer that is ready).
  Task<Response> handle(const Request& request) {
    const bool get = request.method == "GET", post = request.method == "POST";
    if (request.path == "/health") return ready(reply(200, {{"status", "ok"}}));
    if (request.path == "/" && get) return ready({200, "text/html; charset=utf-8", kPage, {}});
    if (request.path == "/login" && post) return login(request);
    if (request.path == "/me" && get) return me(request);
    if (request.path == "/logout" && post) return logout(request);
    const bool known = request.path == "/" || request.path == "/login" || request.path == "/me" ||
                       request.path == "/logout";
    return ready(reply(known ? 405 : 404, {{"error", known ? "method not allowed" : "not found"}}));
  }

 private:
  // POST /login with a form body user=NAME: a new session and its cookie.
  Task<Response> login(const Request& request) {
    auto user = usher::route::find_query(request.body, "user");
    if (!user || !valid_user(*user)) {
      co_return reply(400, {{"error", "user: 1 to 32 of A-Z a-z 0-9 _ - ."}});
    }
    std::string name(*user);  // awaited calls take named values (docs/principles.md)
    auto id = co_await store_.create(std::move(name));
    if (!id) co_return unavailable(id.error());
    Response response = reply(200, {{"user", *user}});
    response.set_cookie = std::string(kCookie) + "=" + *id +
                          "; Path=/; HttpOnly; SameSite=Lax; Max-Age=" + std::to_string(max_age_s_);
    co_return response;
  }

  // GET /me: who is logged in on this session, how often it was seen, and by which server.
  Task<Response> me(const Request& request) {
    auto id = usher::route::find_cookie(request.headers, kCookie);
    if (!id) co_return reply(401, {{"error", "not logged in"}});
    std::string session_id(*id);
    auto session = co_await store_.visit(std::move(session_id));
    if (!session) co_return unavailable(session.error());
    if (!*session) co_return reply(401, {{"error", "not logged in"}});
    co_return reply(200, {{"user", (*session)->user}, {"visits", (*session)->visits}});
  }

  Task<Response> logout(const Request& request) {
    if (auto id = usher::route::find_cookie(request.headers, kCookie)) {
      std::string session_id(*id);
      auto removed = co_await store_.remove(std::move(session_id));
      if (!removed) co_return unavailable(removed.error());
    }
    Response response = reply(200, {{"user", nullptr}});
    response.set_cookie = std::string(kCookie) + "=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0";
    co_return response;
  }

  // Every answer says which server gave it: that is what the demo watches.
  Response reply(int status, json body) const {
    body["server"] = server_;
    return Response{status, "application/json", body.dump() + "\n", {}};
  }

  Response unavailable(const usher::Error& error) const {
    return reply(503, {{"error", "session store unavailable"}, {"detail", error.message}});
  }

  std::string server_;
  SessionStore& store_;
  uint64_t max_age_s_;
};

}  // namespace

Handler make_app(std::string server_name, SessionStore& store, uint64_t cookie_max_age_s) {
  auto app = std::make_shared<App>(std::move(server_name), store, cookie_max_age_s);
  return [app](const Request& request) { return app->handle(request); };
}

}  // namespace session_app
