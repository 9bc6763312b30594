#pragma once
// The browser view of the application: a login form and a "who am I" panel that refreshes
// itself, so one can watch the answering server change while the session stays.
namespace session_app {

inline constexpr const char* kPage = R"html(<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>session-app behind usher</title>
<style>
body { font: 16px system-ui, sans-serif; max-width: 36em; margin: 3em auto; color: #222; }
.panel { border: 1px solid #ccc; border-radius: 8px; padding: 1em 1.5em; margin: 1em 0; }
.server { font-size: 2em; font-weight: bold; }
.error { color: #b00; }
</style></head>
<body>
<h1>session-app</h1>
<p>Every answer names the server that gave it. Your session lives in the session store,
so the server can change from one request to the next while you stay logged in.</p>
<div class="panel" id="login">
  <form id="form"><label>User name <input name="user" value="alice" required></label>
  <button>Log in</button></form>
</div>
<div class="panel" id="me" hidden>
  <p>Logged in as <b id="user"></b>, visit <b id="visits"></b></p>
  <button id="logout">Log out</button>
</div>
<div class="panel">Answered by <span class="server" id="server">?</span>
  <p class="error" id="error"></p>
  <label><input type="checkbox" id="auto" checked> refresh every second</label></div>
<script>
const $ = (id) => document.getElementById(id);
function show(answer, status) {
  $("server").textContent = answer.server || "(usher: no server)";
  $("error").textContent = status >= 500 ? status + " " + (answer.error || "") : "";
  const logged = status === 200 && answer.user;
  $("login").hidden = !!logged || status >= 500;
  $("me").hidden = !logged;
  if (logged) { $("user").textContent = answer.user; $("visits").textContent = answer.visits ?? 0; }
}
async function call(method, path, body) {
  const response = await fetch(path, { method, body,
    headers: body ? { "Content-Type": "application/x-www-form-urlencoded" } : {} });
  let answer = {};
  try { answer = await response.json(); } catch (e) { answer = { error: response.statusText }; }
  show(answer, response.status);
}
$("form").onsubmit = (e) => { e.preventDefault();
  call("POST", "/login", new URLSearchParams(new FormData($("form")))).then(() => call("GET", "/me")); };
$("logout").onclick = () => call("POST", "/logout");
setInterval(() => { if ($("auto").checked) call("GET", "/me"); }, 1000);
call("GET", "/me");
</script></body></html>
)html";

}  // namespace session_app
