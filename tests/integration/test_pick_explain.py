"""Why this backend: the X-Usher-Pick response field (a listener's debug_headers), the access
log's `pick` field and the pool's recent picks in the admin API say which route matched, which
algorithm picked, among how many, which backends were skipped and why, and which tries failed."""
import http.client
import json
import os
import re
import subprocess
import tempfile
import time
import unittest

from harness import USHER, Process, free_port, start_backend, write_config

BROWSER_TESTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "browser")


def get(port, path="/"):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", path)
    response = conn.getresponse()
    body = response.read()
    conn.close()
    return response.status, response.getheader("X-Usher-Pick"), body.decode()


def api_pools(admin_port):
    conn = http.client.HTTPConnection("127.0.0.1", admin_port, timeout=5)
    conn.request("GET", "/api/v1/pools")
    pools = json.loads(conn.getresponse().read())["pools"]
    conn.close()
    return {p["name"]: p for p in pools}


def admin_post(admin_port, path):
    conn = http.client.HTTPConnection("127.0.0.1", admin_port, timeout=5)
    conn.request("POST", path)
    status = conn.getresponse().status
    conn.close()
    return status


def wait_for(condition, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


class DownAndDraining(unittest.TestCase):
    """Four backends: one down (nobody listens; health checks mark it), one drained through the
    admin API, two serving."""

    @classmethod
    def setUpClass(cls):
        cls.backends = {n: start_backend(n) for n in ("b", "c", "d")}
        cls.dead = free_port()
        cls.addr = {n: f"127.0.0.1:{p}" for n, (p, _) in cls.backends.items()}
        cls.addr["a"] = f"127.0.0.1:{cls.dead}"
        cls.dir = tempfile.TemporaryDirectory()
        cls.log = os.path.join(cls.dir.name, "access.log")
        cls.port, cls.quiet_port, cls.admin_port = free_port(), free_port(), free_port()
        config = write_config(f"""workers: 1
admin: {{ listen: 127.0.0.1:{cls.admin_port} }}
access_log: {cls.log}
listeners:
  - name: web
    listen: 127.0.0.1:{cls.port}
    debug_headers: true
    routes:
      - name: app
        pool: web
  - name: quiet
    listen: 127.0.0.1:{cls.quiet_port}
    pool: web
pools:
  - name: web
    balance: round-robin
    health: {{ interval: 100ms, timeout: 500ms, rise: 1, fall: 1 }}
    backends: [{cls.addr["a"]}, {cls.addr["b"]}, {cls.addr["c"]}, {cls.addr["d"]}]
""")
        cls.usher = Process([USHER, "run", "-c", config], port=cls.port)
        healthy = lambda: [b["healthy"] for b in api_pools(cls.admin_port)["web"]["backends"]]
        assert wait_for(lambda: healthy() == [False, True, True, True]), healthy()
        assert admin_post(cls.admin_port, f"/api/v1/pools/web/backends/{cls.addr['b']}/drain") == 200

    @classmethod
    def tearDownClass(cls):
        cls.usher.stop()
        for _, b in cls.backends.values():
            b.stop()
        cls.dir.cleanup()

    def test_the_header_names_the_candidates_and_why_two_were_skipped(self):
        skipped = f"skipped {self.addr['a']} unhealthy, {self.addr['b']} draining"
        answered = set()
        for _ in range(6):
            status, pick, body = get(self.port)
            self.assertEqual(status, 200)
            answered.add(body)
            self.assertEqual(pick, f"route app: round-robin picked {self.addr[body]} of 4; {skipped}")
        self.assertEqual(answered, {"c", "d"})

    def test_only_a_listener_with_debug_headers_sends_the_field(self):
        status, pick, _ = get(self.quiet_port)
        self.assertEqual(status, 200)
        self.assertIsNone(pick)

    def test_the_access_log_and_the_admin_api_say_it_too(self):
        get(self.quiet_port)
        time.sleep(0.15)  # the pool's recent picks take one a tenth of a second
        status, _, body = get(self.port, "/logged")
        self.assertEqual(status, 200)
        expected = (f"round-robin picked {self.addr[body]} of 4; skipped {self.addr['a']} unhealthy, "
                    f"{self.addr['b']} draining")

        def logged():
            if not os.path.exists(self.log):
                return None
            with open(self.log) as f:
                lines = [json.loads(line) for line in f if '"/logged"' in line]
            return lines[-1] if lines else None

        self.assertTrue(wait_for(lambda: logged() is not None, 5))
        self.assertEqual(logged()["pick"], expected)
        recent = api_pools(self.admin_port)["web"]["recent_picks"]
        self.assertEqual(recent[0]["pick"], expected)
        self.assertLess(abs(recent[0]["unix_ms"] / 1000 - time.time()), 60)

    def test_the_dashboard_lists_the_pools_recent_picks(self):
        self.assertTrue(os.path.isdir(os.path.join(BROWSER_TESTS, "node_modules", "playwright-core")),
                        "run: npm ci --prefix tests/browser (scripts/test.sh does)")
        get(self.port)
        wanted = f"skipped {self.addr['a']} unhealthy, {self.addr['b']} draining"
        result = subprocess.run(["node", os.path.join(BROWSER_TESTS, "picks.mjs"),
                                 f"http://127.0.0.1:{self.admin_port}/", "web", wanted],
                                capture_output=True, text=True, timeout=60)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        lines = json.loads(result.stdout.strip().splitlines()[-1])
        self.assertTrue(any(wanted in line and "round-robin picked" in line for line in lines), lines)


class FailedTries(unittest.TestCase):
    """No health checks: a backend nobody listens on is found out by the request itself."""

    def test_a_retry_after_a_refused_connect_names_the_failed_try(self):
        live = start_backend("live")
        dead = [free_port(), free_port()]
        port = free_port()
        config = write_config(f"""workers: 1
listeners:
  - name: web
    listen: 127.0.0.1:{port}
    debug_headers: true
    pool: web
pools:
  - name: web
    balance: round-robin
    backends: [127.0.0.1:{dead[0]}, 127.0.0.1:{live[0]}]
  - name: gone
    backends: [127.0.0.1:{dead[0]}, 127.0.0.1:{dead[1]}]
""")
        usher = Process([USHER, "run", "-c", config], port=port)
        try:
            picks = [get(port) for _ in range(4)]
            self.assertTrue(all(status == 200 for status, _, _ in picks), picks)
            retried = [pick for _, pick, _ in picks if "failed" in pick]
            self.assertTrue(retried, picks)
            self.assertEqual(retried[0], f"route default: round-robin picked 127.0.0.1:{live[0]} of 2; "
                                         f"failed 127.0.0.1:{dead[0]} connect")
        finally:
            usher.stop()
            live[1].stop()

    def test_usher_own_error_response_says_why_too(self):
        dead = [free_port(), free_port()]
        port = free_port()
        config = write_config(f"""workers: 1
listeners:
  - name: web
    listen: 127.0.0.1:{port}
    debug_headers: true
    pool: gone
pools:
  - name: gone
    backends: [127.0.0.1:{dead[0]}, 127.0.0.1:{dead[1]}]
""")
        usher = Process([USHER, "run", "-c", config], port=port)
        try:
            status, pick, _ = get(port)
            self.assertEqual(status, 502)
            # Every try the route allows (3 by default), each refused.
            self.assertRegex(pick, r"^route default: round-robin picked 127\.0\.0\.1:\d+ of 2; failed "
                                   r"127\.0\.0\.1:\d+ connect(, 127\.0\.0\.1:\d+ connect){2}$")
        finally:
            usher.stop()


class Check(unittest.TestCase):
    def test_debug_headers_is_a_flag_of_http_listeners(self):
        for listener, message in (
                ("protocol: tcp\n    pool: web\n    debug_headers: true",
                 "debug_headers applies to http listeners only"),
                ("pool: web\n    debug_headers: maybe", "debug_headers"),
        ):
            config = write_config(f"""listeners:
  - name: x
    listen: 127.0.0.1:1
    {listener}
pools:
  - name: web
    backends: [127.0.0.1:2]
""")
            run = subprocess.run([USHER, "check", "-c", config], capture_output=True, text=True, timeout=30)
            self.assertEqual(run.returncode, 1, run.stdout)
            self.assertRegex(run.stdout + run.stderr, re.escape(config) + r":\d+:\d+: .*" + re.escape(message))


if __name__ == "__main__":
    unittest.main()
