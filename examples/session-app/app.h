#pragma once
// The application: log in, see who you are and which server answered, log out.
#include <string>

#include "http_server.h"
#include "session_store.h"

namespace session_app {

// Routes a request to its handler. server_name says which server answered; store is where
// sessions live (the one thing that decides whether this server can be balanced freely).
Handler make_app(std::string server_name, SessionStore& store, uint64_t cookie_max_age_s);

}  // namespace session_app
