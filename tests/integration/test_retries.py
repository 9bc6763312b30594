"""Retries and failover under load: real usher, real backends, loopback, bounded in count and time."""
import collections
import http.client
import json
import re
import signal
import threading
import time
import unittest

from harness import backend_stats, exchange, start_backend, start_usher, status_of


class KillMidRun(unittest.TestCase):
    def test_a_killed_backend_costs_no_client_request_and_comes_back(self):
        backends = [start_backend(n) for n in ("a", "b", "c")]
        port, usher = start_usher(
            [p for p, _ in backends], workers=2,
            pool_extra="    slow_start: 2s\n"
                       "    health: { interval: 500ms, timeout: 300ms, rise: 2, fall: 2 }\n")
        b_port = backends[1][0]
        total, clients = 20_000, 100
        done, failures, served = [0], [], collections.Counter()
        lock = threading.Lock()
        killed_at = []

        def client(count):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            for _ in range(count):
                try:
                    conn.request("GET", "/")
                    response = conn.getresponse()
                    body = response.read().decode()
                    ok = response.status == 200
                except (OSError, http.client.HTTPException) as e:
                    ok, body = False, repr(e)
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                with lock:
                    done[0] += 1
                    if ok:
                        served[body] += 1
                    else:
                        failures.append(body)
                    if done[0] == total // 4 and not killed_at:
                        backends[1][1].signal(signal.SIGKILL)
                        killed_at.append(time.monotonic())
            conn.close()

        try:
            threads = [threading.Thread(target=client, args=(total // clients,)) for _ in range(clients)]
            started = time.monotonic()
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=120)
            print(f"\n{total} requests in {time.monotonic() - started:.1f}s: {dict(served)}, {len(failures)} failed")
            self.assertEqual(done[0], total)
            self.assertEqual(failures, [])
            log = usher.output()
            self.assertIn(f"backend=127.0.0.1:{b_port} UP -> DOWN", log)

            # Back: after `rise` passing checks it receives traffic again.
            backends[1] = start_backend("b", port=b_port)
            deadline = time.monotonic() + 5
            while f"backend=127.0.0.1:{b_port} DOWN -> UP" not in usher.output() and time.monotonic() < deadline:
                time.sleep(0.05)
            self.assertIn(f"backend=127.0.0.1:{b_port} DOWN -> UP", usher.output())
            time.sleep(2.2)  # past slow start
            after = collections.Counter()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            for _ in range(300):
                conn.request("GET", "/")
                after[conn.getresponse().read().decode()] += 1
            self.assertGreater(after["b"], 50)
        finally:
            usher.stop()
            for _, b in backends:
                b.stop()


class Storm(unittest.TestCase):
    def test_when_every_backend_fails_retries_stay_within_the_budget(self):
        backends = [start_backend(n) for n in ("a", "b", "c")]
        port, usher = start_usher([p for p, _ in backends],
                                  pool_extra="    retries: { attempts: 3, backoff: 1ms, budget: 20, budget_floor: 10 }\n")
        requests = 300
        try:
            started = time.monotonic()
            slowest = 0
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            for _ in range(requests):
                t = time.monotonic()
                conn.request("GET", "/status?code=503")
                response = conn.getresponse()
                response.read()
                self.assertEqual(response.status, 503)
                slowest = max(slowest, time.monotonic() - t)
            conn.close()
            elapsed = time.monotonic() - started
            attempts = sum(backend_stats(p)["requests"] - 1 for p, _ in backends)
            bound = (1 + 0.20) * requests + 10 * (elapsed + 1) + 10
            print(f"\n{requests} requests, {attempts} upstream attempts (bound {bound:.0f}), slowest {slowest * 1000:.0f} ms")
            self.assertLessEqual(attempts, bound)
            self.assertGreater(attempts, requests)  # some were retried
            self.assertLess(slowest, 1.0)
        finally:
            usher.stop()
            for _, b in backends:
                b.stop()


class NonIdempotent(unittest.TestCase):
    def test_a_post_reset_after_sending_is_not_retried(self):
        backends = [start_backend(n) for n in ("a", "b")]
        port, usher = start_usher([p for p, _ in backends])
        try:
            before = sum(backend_stats(p)["requests"] for p, _ in backends)
            out = exchange(port, b"POST /reset HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\n\r\nx")
            self.assertEqual(status_of(out), 502)
            after = sum(backend_stats(p)["requests"] for p, _ in backends)
            self.assertEqual(after - before - 2, 1)  # the stats requests aside, one attempt

            before = after
            out = exchange(port, b"POST /reset HTTP/1.1\r\nHost: t\r\nIdempotency-Key: k1\r\n\r\n")
            self.assertEqual(status_of(out), 502)
            after = sum(backend_stats(p)["requests"] for p, _ in backends)
            self.assertEqual(after - before - 2, 3)  # marked idempotent (and bodiless): retried

            before = after
            out = exchange(port, b"GET /reset HTTP/1.1\r\nHost: t\r\n\r\n")
            self.assertEqual(status_of(out), 502)
            after = sum(backend_stats(p)["requests"] for p, _ in backends)
            self.assertEqual(after - before - 2, 3)  # a GET is retried: attempts 3
        finally:
            usher.stop()
            for _, b in backends:
                b.stop()


if __name__ == "__main__":
    unittest.main()
