"""Locality-aware balancing with real backends and health checks: two zones of two backends, usher
in zone a. Traffic stays in zone a while both its backends are healthy, spills in part (1.4 x 1/2 =
70 % stays) when one goes down, moves wholly to zone b within the health checks' fall window when
both are down, and comes back after rise. The admin API, the metrics and the dashboard's event
list say so too."""
import collections
import http.client
import json
import os
import re
import signal
import subprocess
import threading
import time
import unittest

from harness import USHER, Process, free_port, http_connection, start_backend, write_config

BROWSER_TESTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "browser")

INTERVAL_S, FALL, RISE = 0.5, 1, 2
# With fall 1 the next check notices a backend that died (its port refuses at once): within one
# interval; 0.3 s more covers the check itself, the test's polling and a loaded 2-core machine.
NOTICE_S = INTERVAL_S * FALL + 0.3


def get_json(port, path):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("GET", path)
    response = conn.getresponse()
    body = response.read()
    conn.close()
    return json.loads(body) if path.startswith("/api/") else body.decode()


def wait_for(predicate, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    return predicate()


class Locality(unittest.TestCase):
    def setUp(self):
        self.backends = {name: start_backend(name) for name in ("a1", "a2", "b1", "b2")}
        self.port, self.admin = free_port(), free_port()
        lines = "".join(
            f"      - {{ address: 127.0.0.1:{port}, name: {name}, zone: {name[0]}, region: r1 }}\n"
            for name, (port, _) in self.backends.items())
        config = write_config(f"""workers: 2
admin: {{ listen: 127.0.0.1:{self.admin} }}
locality: {{ zone: a, region: r1 }}
listeners:
  - name: web
    listen: 127.0.0.1:{self.port}
    pool: web
pools:
  - name: web
    balance: round-robin
    locality_aware: true
    health: {{ interval: {int(INTERVAL_S * 1000)}ms, timeout: 400ms, fall: {FALL}, rise: {RISE} }}
    backends:
{lines}""")
        self.config = config
        self.usher = Process([USHER, "run", "-c", config], port=self.port)

    def tearDown(self):
        self.usher.stop()
        for _, process in self.backends.values():
            process.stop()

    def spread(self, requests):
        counts = collections.Counter()
        conn = http_connection(self.port)
        for _ in range(requests):
            conn.request("GET", "/")
            response = conn.getresponse()
            body = response.read().decode()
            counts[body if response.status == 200 else response.status] += 1
        conn.close()
        return counts

    def shares(self):
        pool = get_json(self.admin, "/api/v1/pools")["pools"][0]
        return {t["tier"]: round(t["share"], 3) for t in pool["locality"]["tiers"]}

    def series(self):
        return get_json(self.admin, "/api/v1/series?since=0")

    def tier_events(self):
        return [e["what"] for e in self.series()["events"] if e["what"].startswith("TIERS")]

    def kill(self, name):
        self.backends[name][1].stop()

    def revive(self, name):
        port = self.backends[name][0]
        self.backends[name] = (port, start_backend(name, port=port)[1])

    def test_spills_partly_then_wholly_and_comes_back(self):
        # Both local backends healthy: at least 95 % stays in zone a (round-robin: all of it).
        self.assertEqual(self.shares(), {"zone": 1, "region": 0})
        counts = self.spread(200)
        self.assertGreaterEqual(counts["a1"] + counts["a2"], 190, counts)
        self.assertEqual(sum(counts.values()), 200, counts)

        # The dashboard's sampler (once a second) has seen the split whole before anything fails.
        self.assertTrue(wait_for(lambda: [bool(b["points"]) for b in self.series()["backends"]] == [True] * 4,
                                 3))

        # One local backend down: 1.4 x 1/2 = 70 % stays on a2, 30 % spills to zone b.
        self.kill("a1")
        self.assertTrue(wait_for(lambda: self.shares() == {"zone": 0.7, "region": 0.3}, NOTICE_S + 1),
                        self.shares())
        counts = self.spread(400)
        self.assertEqual(counts["a1"], 0, counts)
        self.assertGreater(counts["a2"], 0.6 * 400, counts)  # some traffic still local
        self.assertLess(counts["a2"], 0.8 * 400, counts)
        self.assertGreater(counts["b1"] + counts["b2"], 0.2 * 400, counts)  # and some spilled
        self.assertEqual(counts["a2"] + counts["b1"] + counts["b2"], 400, counts)
        # The dashboard's event list says when the split changed.
        self.assertTrue(wait_for(lambda: "TIERS zone 100% -> zone 70%, region 30%" in self.tier_events(), 3),
                        self.tier_events())

        # Both down: all of it goes to zone b within one health-check interval (fall 1).
        killed = time.monotonic()
        self.kill("a2")
        self.assertTrue(wait_for(lambda: self.shares() == {"zone": 0, "region": 1}, NOTICE_S),
                        self.shares())
        moved_s = time.monotonic() - killed
        print(f"\nall traffic in zone b {moved_s * 1000:.0f} ms after zone a's last backend died "
              f"(health-check interval {INTERVAL_S * 1000:.0f} ms, fall {FALL})")
        self.assertLessEqual(moved_s, NOTICE_S)
        counts = self.spread(200)
        self.assertEqual(counts["b1"] + counts["b2"], 200, counts)
        self.assertTrue(wait_for(lambda: "TIERS zone 70%, region 30% -> region 100%" in self.tier_events(), 3),
                        self.tier_events())

        # They return: after `rise` passed checks zone a takes everything again.
        revived = time.monotonic()
        self.revive("a1")
        self.revive("a2")
        self.assertTrue(wait_for(lambda: self.shares() == {"zone": 1, "region": 0},
                                 INTERVAL_S * (RISE + 1) + 1.5), self.shares())
        self.assertLessEqual(time.monotonic() - revived, INTERVAL_S * (RISE + 1) + 1.5)
        counts = self.spread(200)
        self.assertGreaterEqual(counts["a1"] + counts["a2"], 190, counts)

        # Metrics: requests by zone, and the tiers' shares now.
        text = get_json(self.admin, "/metrics")
        by_zone = collections.Counter()
        for zone, value in re.findall(
                r'usher_backend_requests_total\{pool="web",backend="[ab]\d",zone="([ab])",code="2xx"\} (\d+)',
                text):
            by_zone[zone] += int(value)
        self.assertEqual(sum(by_zone.values()), 1000, text)
        self.assertGreaterEqual(by_zone["b"], 200 + 80)
        self.assertIn('usher_pool_locality_share{pool="web",tier="zone"} 1', text)
        self.assertIn('usher_pool_locality_share{pool="web",tier="region"} 0', text)
        lint = subprocess.run(["promtool", "check", "metrics"], input=text.encode(), capture_output=True)
        self.assertEqual(lint.returncode, 0, lint.stdout + lint.stderr)

        # Both come back at once, or one check round apart (through 70/30).
        self.assertTrue(wait_for(lambda: any(e.startswith("TIERS region 100% -> zone") for e in self.tier_events())
                                 and self.tier_events()[-1].endswith("-> zone 100%"), 3),
                        self.tier_events())
        zones = {b["backend"]: b.get("zone") for b in self.series()["backends"]}
        self.assertEqual(zones, {"a1": "a", "a2": "a", "b1": "b", "b2": "b"})

    def test_a_reload_may_move_usher_to_another_zone(self):
        self.assertEqual(self.shares(), {"zone": 1, "region": 0})
        with open(self.config) as f:
            text = f.read()
        with open(self.config, "w") as f:
            f.write(text.replace("locality: { zone: a, region: r1 }", "locality: { zone: b, region: r1 }"))
        self.usher.signal(signal.SIGHUP)
        self.assertTrue(wait_for(lambda: get_json(self.admin, "/api/v1/pools")["pools"][0]["locality"]["zone"] == "b",
                                 5))
        counts = self.spread(100)
        self.assertEqual(counts["b1"] + counts["b2"], 100, counts)

    def test_the_dashboard_shows_traffic_per_zone_and_the_spill(self):
        self.assertTrue(os.path.isdir(os.path.join(BROWSER_TESTS, "node_modules", "playwright-core")),
                        "run `npm ci --prefix tests/browser` first (scripts/test.sh does)")
        stop = threading.Event()

        def load():  # bounded: stops with the test, at most 5 000 requests
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
            for _ in range(5000):
                if stop.is_set():
                    break
                try:
                    conn.request("GET", "/")
                    conn.getresponse().read()
                except (OSError, http.client.HTTPException):
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                stop.wait(0.01)
            conn.close()

        loader = threading.Thread(target=load)
        loader.start()
        try:
            # The spill shows once health checks notice, the sampler's next second, a page refresh.
            window_ms = int(NOTICE_S * 1000) + 1000 + 2000
            result = subprocess.run(
                ["node", os.path.join(BROWSER_TESTS, "locality.mjs"), f"http://127.0.0.1:{self.admin}/",
                 str(self.backends["a1"][1].pid), str(window_ms)],
                capture_output=True, text=True, timeout=60)
            self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
            seen = json.loads(result.stdout.strip().splitlines()[-1])
        finally:
            stop.set()
            loader.join()
        before, after = seen["before"], seen["after"]
        self.assertTrue(before["visible"])
        self.assertEqual(set(before["zones"]), {"a", "b"})
        self.assertEqual(before["zones"]["b"][2], "0")  # all traffic local
        self.assertEqual(before["zones"]["a"][3], "100 %")
        self.assertEqual(before["tiers"]["zone"], ["zone (2)", "2 / 2", "100 %"])
        self.assertEqual(before["zoneLines"], 2)
        self.assertEqual(after["tiers"]["zone"], ["zone (2)", "1 / 2", "70 %"])
        self.assertEqual(after["tiers"]["region"], ["region (2)", "2 / 2", "30 %"])
        self.assertGreater(int(after["zones"]["b"][2]), 0)
        self.assertIn("web TIERS zone 100% -> zone 70%, region 30%", after["events"])
        self.assertLessEqual(seen["spillShownAfterMs"], window_ms)


if __name__ == "__main__":
    unittest.main()
