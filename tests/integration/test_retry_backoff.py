"""Retry backoff measured where it happens: the arrival times of the retried attempts at the
backends. The documented wait before retry n is base x 2^(n-1) x [0.5, 1.5), the doubling capped
at 40 x base (src/proxy/l7/http_session.cc backoff_ms)."""
import http.client
import unittest

from harness import start_usher
from recorder import Recorder

BASE_MS = 20
ATTEMPTS = 8  # seven retries: the seventh would double to 64 x base without the cap
SLACK_MS = 40  # connect + request + scheduling on a shared 2-core machine


def window_ms(retry):
    wait = min(BASE_MS * 2 ** (retry - 1), 40 * BASE_MS)
    return wait * 0.5, wait * 1.5


class Backoff(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.recorders = [Recorder("a", "status:503"), Recorder("b", "status:503")]
        cls.port, cls.usher = start_usher(
            [r.port for r in cls.recorders],
            pool_extra=f"    retries: {{ attempts: {ATTEMPTS}, backoff: {BASE_MS}ms, budget: 100, "
                       f"budget_floor: 1000 }}\n")

    @classmethod
    def tearDownClass(cls):
        cls.usher.stop()
        for r in cls.recorders:
            r.stop()

    def attempt_times(self):
        for r in self.recorders:
            with r.lock:
                r.arrivals.clear()
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        conn.request("GET", "/")
        response = conn.getresponse()
        response.read()
        conn.close()
        self.assertEqual(response.status, 503)  # the last attempt's answer, passed on
        times = sorted(t for r in self.recorders for t in r.times())
        self.assertEqual(len(times), ATTEMPTS)
        # Retries go to the next backend: the two alternate.
        self.assertEqual([r.count() for r in self.recorders], [ATTEMPTS // 2, ATTEMPTS // 2])
        return [(b - a) * 1000 for a, b in zip(times, times[1:])]

    def test_spacing_grows_within_the_documented_bounds_and_varies(self):
        runs = [self.attempt_times() for _ in range(3)]
        for gaps in runs:
            print("\nretry gaps (ms):", " ".join(f"{g:.0f}" for g in gaps))
            for retry, gap in enumerate(gaps, start=1):
                low, high = window_ms(retry)
                self.assertGreaterEqual(gap, low - 5, f"retry {retry}: {gap:.1f} ms")
                self.assertLess(gap, high + SLACK_MS, f"retry {retry}: {gap:.1f} ms")
            # It grows: the windows of retries 1-2 and 5-7 do not overlap.
            self.assertLess(max(gaps[:2]), min(gaps[4:]))
        # The cap: retry 7 waits 40 x base x [0.5, 1.5), never the uncapped 64 x base x [0.5, 1.5).
        # Jitter: the same retry waits differently from one request to the next.
        for retry in (4, 5, 6, 7):
            gaps = [run[retry - 1] for run in runs]
            self.assertGreater(max(gaps) - min(gaps), 3, f"retry {retry} waits the same: {gaps}")


if __name__ == "__main__":
    unittest.main()
