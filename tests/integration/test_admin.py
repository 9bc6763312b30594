"""The admin listener: liveness, readiness, pool state, and draining a backend."""
import collections
import http.client
import json
import os
import signal
import subprocess
import threading
import time
import unittest

from harness import USHER, free_port, start_backend, start_usher


def admin(port, method, path, token=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request(method, path, headers={"Authorization": f"Bearer {token}"} if token else {})
    response = conn.getresponse()
    body = response.read()
    conn.close()
    return response.status, body


def start_pair(admin_options=""):
    """Backends a and b behind one usher with an admin listener; returns them, the admin port,
    usher's port, usher, and b's address."""
    backends = [start_backend(n) for n in ("a", "b")]
    admin_port = free_port()
    port, usher = start_usher([p for p, _ in backends],
                              extra=f"admin: {{ listen: 127.0.0.1:{admin_port}{admin_options} }}\n")
    return backends, admin_port, port, usher, f"127.0.0.1:{backends[1][0]}"


class Drain(unittest.TestCase):
    def test_a_draining_backend_gets_no_new_requests_and_finishes_its_own(self):
        backends, admin_port, port, usher, b_address = start_pair()
        try:
            self.assertEqual(admin(admin_port, "GET", "/livez"), (200, b"ok\n"))
            self.assertEqual(admin(admin_port, "GET", "/readyz")[0], 200)
            # A slow request in flight on b while b is put into drain.
            results = []

            def slow():
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                for _ in range(2):  # round-robin: one of the two lands on b
                    conn.request("GET", "/sleep?ms=800")
                    response = conn.getresponse()
                    results.append((response.status, response.read()))
                conn.close()

            threads = [threading.Thread(target=slow) for _ in range(2)]
            for t in threads:
                t.start()
            time.sleep(0.3)
            status, body = admin(admin_port, "POST", f"/api/v1/pools/web/backends/{b_address}/drain")
            self.assertEqual(status, 200, body)
            self.assertEqual(json.loads(body)["draining"], True)
            counts = collections.Counter()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            for _ in range(20):
                conn.request("GET", "/")
                counts[conn.getresponse().read().decode()] += 1
            conn.close()
            self.assertEqual(counts, {"a": 20})
            for t in threads:
                t.join()
            self.assertEqual([s for s, _ in results], [200] * 4)  # in-flight ones finished
            pools = json.loads(admin(admin_port, "GET", "/api/v1/pools")[1])["pools"]
            self.assertEqual([b["draining"] for b in pools[0]["backends"]], [False, True])

            self.assertEqual(admin(admin_port, "POST", f"/api/v1/pools/web/backends/{b_address}/ready")[0], 200)
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            seen = set()
            for _ in range(4):
                conn.request("GET", "/")
                seen.add(conn.getresponse().read().decode())
            conn.close()
            self.assertEqual(seen, {"a", "b"})

            self.assertEqual(admin(admin_port, "POST", "/api/v1/pools/nope/backends/1.2.3.4:5/drain")[0], 404)
            self.assertEqual(admin(admin_port, "GET", f"/api/v1/pools/web/backends/{b_address}/drain")[0], 405)
            self.assertEqual(admin(admin_port, "GET", "/elsewhere")[0], 404)
            self.assertEqual(admin(admin_port, "GET", "/")[0], 200)  # the dashboard

            usher.signal(signal.SIGTERM)
            time.sleep(0.1)
            self.assertEqual(usher.wait(5), 0, usher.output()[-4000:])
        finally:
            usher.stop()
            for _, b in backends:
                b.stop()


class TokenAndStates(unittest.TestCase):
    def test_token_disable_enable_and_ctl(self):
        backends, admin_port, port, usher, b_address = start_pair(", token: s3cret")
        ctl = [USHER, "ctl", "--admin", f"127.0.0.1:{admin_port}"]
        try:
            # Without the token: refused; health endpoints and the page stay open.
            self.assertEqual(admin(admin_port, "GET", "/api/v1/pools")[0], 401)
            self.assertEqual(admin(admin_port, "GET", "/metrics", "wrong")[0], 401)
            self.assertEqual(admin(admin_port, "POST", f"/api/v1/pools/web/backends/{b_address}/disable")[0], 401)
            self.assertEqual(admin(admin_port, "GET", "/livez")[0], 200)
            self.assertEqual(admin(admin_port, "GET", "/")[0], 200)
            self.assertEqual(admin(admin_port, "GET", "/api/v1/pools", "s3cret")[0], 200)
            self.assertEqual(subprocess.run(ctl + ["pools"], capture_output=True).returncode, 1)

            # Disable b with `usher ctl`: only a answers; enable it again: both do.
            done = subprocess.run(ctl + ["--token", "s3cret", "disable", "web", b_address],
                                  capture_output=True, text=True)
            self.assertEqual(done.returncode, 0, done.stderr)
            self.assertEqual(json.loads(done.stdout)["state"], "disabled")
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            answers = collections.Counter()
            for _ in range(10):
                conn.request("GET", "/")
                answers[conn.getresponse().read().decode()] += 1
            self.assertEqual(answers, {"a": 10})
            env = dict(os.environ, USHER_ADMIN_TOKEN="s3cret")
            self.assertEqual(subprocess.run(ctl + ["enable", "web", b_address], env=env,
                                            capture_output=True).returncode, 0)
            answers.clear()
            for _ in range(10):
                conn.request("GET", "/")
                answers[conn.getresponse().read().decode()] += 1
            conn.close()
            self.assertEqual(answers, {"a": 5, "b": 5})
            pools = json.loads(subprocess.run(ctl + ["pools"], env=env, capture_output=True).stdout)
            self.assertEqual([b["state"] for b in pools["pools"][0]["backends"]], ["serving", "serving"])
        finally:
            usher.stop()
            for _, b in backends:
                b.stop()


if __name__ == "__main__":
    unittest.main()
