"""The dashboard in a real browser: headless Chromium (Debian's) driven by playwright-core logs in
with the token form, sees three healthy backends, then one killed within the health-check window,
drains, enables and disables backends with its buttons (the API agrees after each), plots exactly
the points the API served, and leaves a screenshot in the build folder."""
import http.client
import json
import os
import subprocess
import threading
import unittest

from harness import USHER, Process, free_port, start_backend, write_config

HERE = os.path.dirname(os.path.abspath(__file__))
BROWSER_TESTS = os.path.join(HERE, "..", "browser")
INTERVAL_MS, FALL = 500, 2
TOKEN = "dashboard-test-token"


class Dashboard(unittest.TestCase):
    def test_shows_health_and_steers_backends(self):
        self.assertTrue(os.path.isdir(os.path.join(BROWSER_TESTS, "node_modules", "playwright-core")),
                        "run `npm ci --prefix tests/browser` first (scripts/test.sh does)")
        backends = [start_backend(f"app-{i}") for i in (1, 2, 3)]
        port, admin = free_port(), free_port()
        lines = "".join(f"      - {{ address: 127.0.0.1:{p}, name: app-{i} }}\n"
                        for i, (p, _) in enumerate(backends, 1))
        config = write_config(f"""workers: 2
admin: {{ listen: 127.0.0.1:{admin}, token: {TOKEN} }}
listeners:
  - name: web
    listen: 127.0.0.1:{port}
    pool: web
pools:
  - name: web
    health: {{ interval: {INTERVAL_MS}ms, timeout: 300ms, fall: {FALL}, rise: 2 }}
    backends:
{lines}""")
        usher = Process([USHER, "run", "-c", config], port=port)
        stop = threading.Event()

        def load():  # bounded: stops with the test, at most 20 000 requests
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            for _ in range(20000):
                if stop.is_set():
                    break
                try:
                    conn.request("GET", "/")
                    conn.getresponse().read()
                except (OSError, http.client.HTTPException):
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                stop.wait(0.01)
            conn.close()

        loader = threading.Thread(target=load)
        loader.start()
        try:
            screenshot = os.path.join(os.environ.get("USHER_BUILD_DIR", HERE), "dashboard.png")
            # Removal takes fall checks after the kill, plus a check interval, plus a page refresh.
            window_ms = INTERVAL_MS * (FALL + 1) + 1000 + 2000
            result = subprocess.run(
                ["node", os.path.join(BROWSER_TESTS, "dashboard.mjs"), f"http://127.0.0.1:{admin}/", TOKEN,
                 str(backends[1][1].pid), screenshot, str(window_ms)],
                capture_output=True, text=True, timeout=90)
            self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
            seen = json.loads(result.stdout.strip().splitlines()[-1])
            # The token form: no data without it, a wrong token is refused, the right one works.
            self.assertEqual(seen["rowsWithoutToken"], 0)
            self.assertTrue(seen["loginShownAfterWrongToken"])
            self.assertEqual(seen["before"], {"app-1": "UP", "app-2": "UP", "app-3": "UP"})
            self.assertEqual(seen["afterKill"], {"app-1": "UP", "app-2": "DOWN", "app-3": "UP"})
            self.assertLessEqual(seen["downAfterMs"], window_ms)
            # Each button, as the page shows it and as the API reports it.
            steps = [(s["backend"], s["button"], s["page"][s["backend"]], s["api"][s["backend"]])
                     for s in seen["steps"]]
            self.assertEqual([step[:3] for step in steps], [
                ("app-1", "Drain", "DRAINING"), ("app-1", "Enable", "UP"),
                ("app-3", "Disable", "DISABLED"), ("app-3", "Enable", "UP")])
            self.assertEqual([step[3] for step in steps], ["draining", "serving", "disabled", "serving"])
            self.assertIn("web / app-2 UP -> DOWN", seen["timeline"])
            self.assertIn("web / app-1 DRAINING", seen["timeline"])
            # The charts plot the API's points: every one, at the place its value and time give.
            self.assertEqual(seen["chartProblems"], [])
            for name, count in seen["points"].items():
                self.assertGreaterEqual(count, 3, f"{name}: {count} points")  # one a second, for > 5 s
            self.assertGreater(seen["servedRps"], 0)  # the load shows, not only zeros
            self.assertEqual(seen["tableRps"], seen["lastRps"])
            self.assertGreater(os.path.getsize(screenshot), 10000)
        finally:
            stop.set()
            loader.join()
            usher.stop()
            for _, b in backends:
                b.stop()


if __name__ == "__main__":
    unittest.main()
