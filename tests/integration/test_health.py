"""Active health checks: real usher, real backends, loopback, bounded in time."""
import collections
import re
import signal
import time
import unittest

from harness import exchange, http_connection, start_backend, start_usher, status_of


def spread(port, requests=30):
    counts = collections.Counter()
    conn = http_connection(port)
    for _ in range(requests):
        conn.request("GET", "/")
        response = conn.getresponse()
        body = response.read().decode()
        counts[body if response.status == 200 else response.status] += 1
    conn.close()
    return counts


def wait_for(predicate, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


class BrokenApplication(unittest.TestCase):
    """Backend b accepts TCP but its application answers 500 on /health."""

    def run_with(self, check):
        a = start_backend("a")
        b = start_backend("b", health=500)
        port, usher = start_usher([a[0], b[0]], pool_extra=f"    health: {{ {check}, interval: 200ms, timeout: 1s, rise: 2, fall: 2 }}\n")
        try:
            time.sleep(1.2)  # several intervals: enough for fall 2
            return spread(port), usher.output()
        finally:
            usher.stop()
            a[1].stop()
            b[1].stop()

    def test_http_check_removes_it(self):
        counts, log = self.run_with("type: http, path: /health, expect_status: 200")
        self.assertEqual(counts, {"a": 30})
        self.assertRegex(log, r"backend=127\.0\.0\.1:\d+ UP -> DOWN after 2 failed checks \(last: status 500")

    def test_tcp_check_keeps_it(self):
        counts, log = self.run_with("type: tcp")
        self.assertEqual(counts, {"a": 15, "b": 15})
        self.assertNotIn("DOWN", log)


class ExpectBody(unittest.TestCase):
    def test_a_check_can_require_text_in_the_body(self):
        a = start_backend("a")  # its /health answers 200 with the body "health"
        b = start_backend("b")
        port, usher = start_usher([a[0], b[0]], pool_extra=(
            "    health: { interval: 150ms, rise: 1, fall: 1, expect_body: health }\n"))
        port2, usher2 = start_usher([a[0], b[0]], pool_extra=(
            "    health: { interval: 150ms, rise: 1, fall: 1, expect_body: ready }\n"))
        try:
            time.sleep(0.8)
            self.assertEqual(spread(port, 10), {"a": 5, "b": 5})
            self.assertEqual(spread(port2, 10), {503: 10})
            self.assertIn("body lacks 'ready'", usher2.output())
        finally:
            for p in (usher, usher2, a[1], b[1]):
                p.stop()


class Outlier(unittest.TestCase):
    def test_failing_real_traffic_ejects_for_a_growing_time_and_checks_bring_it_back(self):
        a = start_backend("a")
        b = start_backend("b", fail=500)  # passes /health, fails real requests
        port, usher = start_usher([a[0], b[0]], pool_extra=(
            "    retries: { attempts: 1 }\n"
            "    health: { interval: 100ms, rise: 1, fall: 3 }\n"
            "    outlier: { consecutive_failures: 3, base_ejection: 1s, max_ejection_percent: 50 }\n"))
        who = f"backend=127.0.0.1:{b[0]}"
        try:
            counts = spread(port, 20)
            self.assertEqual(counts[500], 3)  # the third failure ejects it
            self.assertEqual(counts["a"], 17)
            self.assertIn(f"{who} UP -> EJECTED for 1000 ms after 3 consecutive failures (ejection 1)", usher.output())
            self.assertTrue(wait_for(lambda: f"{who} DOWN -> UP" in usher.output(), 3))
            counts = spread(port, 20)
            self.assertEqual(counts[500], 3)
            self.assertIn(f"{who} UP -> EJECTED for 2000 ms after 3 consecutive failures (ejection 2)", usher.output())
        finally:
            for p in (usher, a[1], b[1]):
                p.stop()

    def test_never_more_than_the_allowed_share(self):
        a = start_backend("a", fail=500)
        b = start_backend("b", fail=500)
        port, usher = start_usher([a[0], b[0]], pool_extra=(
            "    retries: { attempts: 1 }\n"
            "    health: { interval: 1s }\n"
            "    outlier: { consecutive_failures: 2, base_ejection: 10s, max_ejection_percent: 50 }\n"))
        try:
            counts = spread(port, 20)
            self.assertEqual(counts[500], 20)  # one ejected; the other stays: 50 % at most
            self.assertEqual(usher.output().count("EJECTED for"), 1)
        finally:
            for p in (usher, a[1], b[1]):
                p.stop()


class Panic(unittest.TestCase):
    def test_below_the_threshold_every_backend_is_used(self):
        backends = [start_backend("a"), start_backend("b", health=500), start_backend("c", health=500)]
        port, usher = start_usher([p for p, _ in backends], pool_extra=(
            "    panic_threshold: 50\n    health: { interval: 150ms, rise: 1, fall: 1 }\n"))
        try:
            self.assertTrue(wait_for(lambda: "enters panic" in usher.output(), 3))
            self.assertEqual(set(spread(port, 30)), {"a", "b", "c"})
        finally:
            usher.stop()
            for _, b in backends:
                b.stop()


class Timeline(unittest.TestCase):
    def test_fall_three_then_rise_three_with_one_second_interval(self):
        backends = [start_backend(n) for n in ("a", "b", "c")]
        port, usher = start_usher([p for p, _ in backends],
                                  pool_extra="    health: { interval: 1s, timeout: 500ms, rise: 3, fall: 3 }\n")
        b_port = backends[1][0]
        who = f"backend=127.0.0.1:{b_port}"
        try:
            backends[1][1].signal(signal.SIGKILL)
            killed = time.monotonic()
            self.assertTrue(wait_for(lambda: f"{who} UP -> DOWN" in usher.output(), 6))
            removed = time.monotonic() - killed
            self.assertLessEqual(removed, 3 * 1.1 + 1 + 0.5)  # interval x fall (+ jitter) + one interval
            counts = spread(port)
            self.assertNotIn("b", counts)
            self.assertEqual(sum(counts.values()), 30)

            backends[1] = start_backend("b", port=b_port)
            self.assertTrue(wait_for(lambda: f"{who} DOWN -> UP" in usher.output(), 6))
            self.assertIn("b", spread(port))
            lines = [l for l in usher.output().splitlines() if who in l]
            steps = [re.search(r"(fall \d/3|rise \d/3|UP -> DOWN|DOWN -> UP)", l).group(1) for l in lines]
            self.assertEqual(steps, ["fall 1/3", "fall 2/3", "UP -> DOWN", "rise 1/3", "rise 2/3", "DOWN -> UP"], lines)
        finally:
            usher.stop()
            for _, b in backends:
                b.stop()


class NothingHealthy(unittest.TestCase):
    def test_503_with_retry_after_at_once(self):
        a = start_backend("a", health=503)
        port, usher = start_usher([a[0]], pool_extra="    health: { interval: 100ms, rise: 1, fall: 1 }\n")
        try:
            self.assertTrue(wait_for(lambda: "UP -> DOWN" in usher.output(), 3))
            started = time.monotonic()
            out = exchange(port, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            self.assertEqual(status_of(out), 503)
            self.assertIn(b"Retry-After: 1\r\n", out)
            self.assertLess(time.monotonic() - started, 0.5)
        finally:
            usher.stop()
            a[1].stop()


if __name__ == "__main__":
    unittest.main()
