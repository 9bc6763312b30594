"""Active health probes as the backend sees them: one prober per process whatever the number of
workers, an expected status range, and probe spacing that varies (jitter) around the interval."""
import collections
import http.client
import time
import unittest

from harness import backend_stats, start_backend, start_usher
from recorder import Recorder


def spread(port, requests=10):
    counts = collections.Counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    for _ in range(requests):
        conn.request("GET", "/")
        response = conn.getresponse()
        counts[response.read().decode() if response.status == 200 else response.status] += 1
    conn.close()
    return counts


class OncePerProcess(unittest.TestCase):
    def test_four_workers_probe_each_backend_once_per_interval(self):
        backends = [start_backend(n) for n in ("a", "b")]
        port, usher = start_usher([p for p, _ in backends], workers=4,
                                  pool_extra="    health: { interval: 100ms, timeout: 1s, rise: 1, fall: 1 }\n")
        window = 2.0
        try:
            time.sleep(0.3)
            before = [backend_stats(p)["requests"] for p, _ in backends]
            time.sleep(window)
            after = [backend_stats(p)["requests"] for p, _ in backends]
            probes = [b - a - 1 for a, b in zip(before, after)]  # minus the first /stats request
            print(f"\nprobes per backend in {window} s at 100 ms, 4 workers: {probes}")
            expected = window / 0.1
            for n in probes:
                # One prober: ~20 (jitter moves it by 10 %); one per worker would be ~80.
                self.assertGreaterEqual(n, expected * 0.7)
                self.assertLessEqual(n, expected * 1.3)
        finally:
            usher.stop()
            for _, b in backends:
                b.stop()


class StatusRange(unittest.TestCase):
    def test_a_status_in_the_expected_range_passes_and_one_outside_fails(self):
        a = start_backend("a")
        b = start_backend("b", health=302)  # /health redirects
        check = "interval: 100ms, timeout: 1s, rise: 1, fall: 1"
        ranged_port, ranged = start_usher([a[0], b[0]],
                                          pool_extra=f"    health: {{ {check}, expect_status: 200-399 }}\n")
        exact_port, exact = start_usher([a[0], b[0]], pool_extra=f"    health: {{ {check}, expect_status: 200 }}\n")
        try:
            time.sleep(0.8)
            self.assertEqual(spread(ranged_port), {"a": 5, "b": 5})
            self.assertEqual(spread(exact_port), {"a": 10})
            self.assertRegex(exact.output(), r"UP -> DOWN after 1 failed checks \(last: status 302")
            self.assertNotIn("DOWN", ranged.output())
        finally:
            for p in (ranged, exact, a[1], b[1]):
                p.stop()


class Jitter(unittest.TestCase):
    def test_probe_spacing_varies_within_ten_percent_of_the_interval(self):
        interval_ms = 400
        recorders = [Recorder(n) for n in ("a", "b", "c")]
        port, usher = start_usher([r.port for r in recorders], pool_extra=(
            f"    health: {{ interval: {interval_ms}ms, timeout: 1s, rise: 1, fall: 1 }}\n"))
        try:
            started = time.monotonic()
            time.sleep(3.3)
            firsts = []
            all_gaps = []
            for r in recorders:
                times = r.times("/health")
                self.assertGreaterEqual(len(times), 6, r.name)
                firsts.append((times[0] - started) * 1000)
                gaps = [(b - a) * 1000 for a, b in zip(times, times[1:])]
                print(f"\n{r.name}: first at {firsts[-1]:.0f} ms, gaps", " ".join(f"{g:.0f}" for g in gaps))
                for g in gaps:  # interval x [0.9, 1.1] plus the probe's own few ms
                    self.assertGreaterEqual(g, interval_ms * 0.9 - 10)
                    self.assertLess(g, interval_ms * 1.1 + 40)
                # Varies: a fixed interval would repeat within a few ms of scheduling noise.
                self.assertGreater(max(gaps) - min(gaps), 15, f"{r.name}: {gaps}")
                all_gaps += gaps
            # The first probes are spread over the interval, not all at once.
            self.assertGreater(max(firsts) - min(firsts), 20, firsts)
            self.assertLess(max(firsts), interval_ms + 300)
        finally:
            usher.stop()
            for r in recorders:
                r.stop()


if __name__ == "__main__":
    unittest.main()
