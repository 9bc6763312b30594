"""The seed system as assertions: three real session-app servers behind usher, sessions in their
own memory (broken) or in a real redis-server (right). Each test tells one part of the story:
memory + round-robin logs the user out, memory + sticky hides it until the server dies, Redis
keeps the user logged in through a server crash, and a Redis outage is a quick 503 that heals."""
import http.client
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import unittest

from harness import HERE, Process, exchange, free_port, start_usher, status_of

SESSION_APP = os.environ.get(
    "USHER_SESSION_APP", os.path.join(HERE, "..", "..", "build", "examples", "session-app", "session-app"))
BROWSER_TESTS = os.path.join(HERE, "..", "browser")
NAMES = ("alpha", "beta", "gamma")


class Redis:
    """A real redis-server on a free loopback port; its data folder survives restarts."""

    def __init__(self):
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="usher-redis-")
        self.process = None
        self.start()

    def start(self):
        # Save points make a stop (SIGTERM) write the data, as a production Redis would keep it.
        self.process = Process(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                                "--dir", self.dir, "--save", "3600 1", "--appendonly", "no"],
                               port=self.port)

    def stop(self):
        self.process.signal(signal.SIGTERM)
        self.process.wait(10)
        self.process.stop()

    def close(self):
        self.process.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class User:
    """A browser-like client: keeps the sid cookie, one keep-alive connection to usher."""

    def __init__(self, port):
        self.port = port
        self.cookies = {}
        self.conn = None

    def close(self):
        if self.conn is not None:
            self.conn.close()

    def request(self, method, path, body=None):
        if self.conn is None:
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())} if self.cookies else {}
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            self.conn.request(method, path, body=body, headers=headers)
            response = self.conn.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException):
            self.conn.close()
            self.conn = None
            return 0, {}
        for value in response.headers.get_all("Set-Cookie") or []:
            name, _, cookie = value.split(";")[0].partition("=")
            if cookie:
                self.cookies[name] = cookie
            else:
                self.cookies.pop(name, None)
        return response.status, json.loads(data) if data.startswith(b"{") else {}

    def login(self, name):
        return self.request("POST", "/login", body=f"user={name}")

    def me(self):
        return self.request("GET", "/me")


class SeedSystem(unittest.TestCase):
    def start(self, store, balance="round-robin", sticky=False, redis=None):
        self.servers = {}
        ports = []
        for name in NAMES:
            port = free_port()
            args = [SESSION_APP, "--listen", f"127.0.0.1:{port}", "--name", name, "--store", store]
            if redis:
                args += ["--redis", f"127.0.0.1:{redis.port}", "--redis-timeout", "200ms"]
            self.servers[name] = Process(args, port=port)
            ports.append(port)
        self.addCleanup(lambda: [s.stop() for s in self.servers.values()])
        pool = f"    balance: {balance}\n"
        pool += "    health: { type: http, path: /health, interval: 200ms, timeout: 150ms, rise: 1, fall: 1 }\n"
        if sticky:
            pool += "    sticky: { cookie: SERVERID }\n"
        self.port, usher = start_usher(ports, pool_extra=pool)
        self.usher = usher
        self.addCleanup(usher.stop)
        user = User(self.port)
        self.addCleanup(user.close)
        return user

    def kill(self, name):
        self.servers[name].signal(signal.SIGKILL)
        self.servers[name].wait(5)

    def test_memory_store_behind_round_robin_logs_the_user_out(self):
        user = self.start("memory")
        status, answer = user.login("alice")
        self.assertEqual(status, 200)
        login_server = answer["server"]
        status, answer = user.me()
        self.assertEqual(status, 401, answer)  # the next server never heard of this session
        self.assertNotEqual(answer["server"], login_server)
        # Over six requests the user is logged in only where the login happened.
        answers = [user.me() for _ in range(6)]
        logged_in = {a["server"] for s, a in answers if s == 200}
        self.assertEqual(logged_in, {login_server})
        self.assertEqual(sum(1 for s, _ in answers if s == 401), 4)

    def test_memory_store_with_sticky_cookie_loses_the_session_with_its_server(self):
        user = self.start("memory", sticky=True)
        status, answer = user.login("alice")
        self.assertEqual(status, 200)
        pinned = answer["server"]
        for visit in range(1, 11):
            status, answer = user.me()
            self.assertEqual((status, answer["server"], answer["visits"]), (200, pinned, visit))
        self.kill(pinned)
        status, answer = user.me()  # usher re-pins to a live server, which has no such session
        self.assertEqual(status, 401, answer)
        self.assertNotEqual(answer["server"], pinned)

    def run_redis_story(self, balance):
        redis = Redis()
        self.addCleanup(redis.close)
        user = self.start("redis", balance=balance, redis=redis)
        status, answer = user.login("alice")
        self.assertEqual(status, 200)
        login_server = answer["server"]
        seen, failures = [], []
        for visit in range(1, 51):
            status, answer = user.me()
            if status != 200 or answer.get("visits") != visit or answer.get("user") != "alice":
                failures.append((visit, status, answer))
            seen.append(answer.get("server"))
        self.assertEqual(failures, [])
        self.assertEqual(set(seen), set(NAMES))  # spread over all three, never logged out
        self.kill(login_server)
        after = []
        for visit in range(51, 81):
            status, answer = user.me()
            if status != 200 or answer.get("visits") != visit or answer.get("user") != "alice":
                failures.append((visit, status, answer))
            after.append(answer.get("server"))
        self.assertEqual(failures, [])  # zero failed requests, still logged in, counter exact
        self.assertNotIn(login_server, after)
        self.assertEqual(set(after), set(NAMES) - {login_server})

    def test_redis_store_behind_round_robin_survives_a_server_crash(self):
        self.run_redis_story("round-robin")

    def test_redis_store_behind_least_connections_survives_a_server_crash(self):
        self.run_redis_story("least-connections")

    def test_redis_outage_is_a_quick_503_and_heals_by_itself(self):
        redis = Redis()
        self.addCleanup(redis.close)
        user = self.start("redis", redis=redis)
        self.assertEqual(user.login("alice")[0], 200)
        self.assertEqual(user.me()[1]["visits"], 1)

        redis.stop()
        for _ in range(6):
            started = time.monotonic()
            status, answer = user.me()
            self.assertLess(time.monotonic() - started, 1.0)
            self.assertEqual(status, 503, answer)
            self.assertEqual(answer["error"], "session store unavailable")  # the app's answer
            self.assertIn(answer["server"], NAMES)
        self.assertIsNone(self.usher.proc.poll())
        for process in self.servers.values():
            self.assertIsNone(process.proc.poll())

        redis.start()
        deadline = time.monotonic() + 5
        status, answer = user.me()
        while status != 200 and time.monotonic() < deadline:
            time.sleep(0.1)
            status, answer = user.me()
        self.assertEqual((status, answer["user"], answer["visits"]), (200, "alice", 2))

    def test_hung_redis_answers_503_within_the_timeout(self):
        redis = Redis()
        self.addCleanup(redis.close)
        user = self.start("redis", redis=redis)
        self.assertEqual(user.login("alice")[0], 200)
        redis.process.signal(signal.SIGSTOP)
        try:
            started = time.monotonic()
            status, answer = user.me()
            elapsed = time.monotonic() - started
        finally:
            redis.process.signal(signal.SIGCONT)
        self.assertEqual(status, 503, answer)
        self.assertEqual(answer["error"], "session store unavailable")
        # 200 ms per attempt; usher retries a 503 on the other servers (3 attempts in all).
        self.assertLess(elapsed, 3 * 0.2 + 0.5)
        deadline = time.monotonic() + 5
        status, _ = user.me()
        while status != 200 and time.monotonic() < deadline:
            time.sleep(0.1)
            status, _ = user.me()
        self.assertEqual(status, 200)

    def test_the_app_answers_bad_input_with_clean_statuses(self):
        port = free_port()
        app = Process([SESSION_APP, "--listen", f"127.0.0.1:{port}", "--name", "solo", "--store", "memory"],
                      port=port)
        self.addCleanup(app.stop)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        self.addCleanup(conn.close)
        cases = [("POST", "/login", "user=%3Cscript%3E", 400), ("POST", "/login", "", 400),
                 ("GET", "/nowhere", None, 404), ("DELETE", "/me", None, 405), ("GET", "/me", None, 401)]
        for method, path, body, expected in cases:
            headers = {"Content-Type": "application/x-www-form-urlencoded"} if body is not None else {}
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            answer = json.loads(response.read())
            self.assertEqual(response.status, expected, (method, path, answer))
            self.assertEqual(answer["server"], "solo")
        raw = exchange(port, b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n")
        self.assertEqual(status_of(raw), 400)
        raw = exchange(port, b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Length: 999999\r\n\r\n")
        self.assertEqual(status_of(raw), 413)
        self.assertIsNone(app.proc.poll())

    def test_walk_through_in_a_browser(self):
        """The README's walk-through: log in on the page, watch the server change while the user
        stays logged in, kill a server, stay logged in."""
        self.assertTrue(os.path.isdir(os.path.join(BROWSER_TESTS, "node_modules", "playwright-core")),
                        "run `npm ci --prefix tests/browser` first (scripts/test.sh does)")
        redis = Redis()
        self.addCleanup(redis.close)
        self.start("redis", redis=redis)
        screenshot = os.path.join(os.environ.get("USHER_BUILD_DIR", HERE), "session-app.png")
        result = subprocess.run(
            ["node", os.path.join(BROWSER_TESTS, "session_app.mjs"), f"http://127.0.0.1:{self.port}/",
             str(self.servers["beta"].pid), screenshot],
            capture_output=True, text=True, timeout=90)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        seen = json.loads(result.stdout.strip().splitlines()[-1])
        views = seen["before"] + seen["after"]
        self.assertEqual([v["user"] for v in views], ["alice"] * 8)
        self.assertEqual([v["error"] for v in views], [""] * 8)
        self.assertEqual([v["visits"] for v in views], list(range(views[0]["visits"], views[0]["visits"] + 8)))
        self.assertEqual({v["server"] for v in seen["before"]}, set(NAMES))
        self.assertNotIn("beta", {v["server"] for v in seen["after"][1:]})


if __name__ == "__main__":
    unittest.main()
