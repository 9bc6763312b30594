"""`usher proxy` quick mode, no config file: it proxies to every --to backend, and --balance
chooses the algorithm."""
import collections
import http.client
import subprocess
import threading
import time
import unittest

from harness import USHER, Process, free_port, start_backend, wait_port


def start_quick(backend_ports, *options):
    port = free_port()
    args = [USHER, "proxy", "--listen", f"127.0.0.1:{port}"]
    for p in backend_ports:
        args += ["--to", f"127.0.0.1:{p}"]
    usher = Process(args + list(options))
    try:
        usher.wait(0.3)  # still running is the good case; an option it refuses ends it at once
    except subprocess.TimeoutExpired:
        wait_port(port)
        return port, usher
    output = usher.output()
    usher.stop()
    raise AssertionError(f"usher proxy {' '.join(options)} exited: {output}")


def bodies(port, n, source="127.0.0.1", path="/"):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5, source_address=(source, 0))
    out = []
    for _ in range(n):
        conn.request("GET", path)
        response = conn.getresponse()
        out.append((response.status, response.read().decode()))
    conn.close()
    return out


class QuickMode(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.backends = [start_backend(n) for n in ("a", "b")]
        cls.ports = [p for p, _ in cls.backends]

    @classmethod
    def tearDownClass(cls):
        for _, b in cls.backends:
            b.stop()

    def test_default_round_robin_reaches_both_backends_in_turn(self):
        port, usher = start_quick(self.ports, "--workers", "2")
        try:
            got = bodies(port, 20)
            self.assertEqual({s for s, _ in got}, {200})
            names = [b for _, b in got]
            self.assertEqual(collections.Counter(names), {"a": 10, "b": 10})
            self.assertTrue(all(x != y for x, y in zip(names, names[1:])), names)
            # What reached the backends is the request usher forwarded, not a local answer.
            echo = bodies(port, 1, path="/echo")[0][1]
            self.assertIn("X-Forwarded-For: 127.0.0.1", echo)
        finally:
            usher.stop()

    def test_balance_ip_hash_keeps_a_client_on_one_backend(self):
        port, usher = start_quick(self.ports, "--balance", "ip-hash", "--workers", "1")
        try:
            homes = set()
            for last in range(2, 22):
                source = f"127.0.0.{last}"
                names = {b for _, b in bodies(port, 4, source=source)}
                self.assertEqual(len(names), 1, f"{source} moved: {names}")
                homes |= names
            self.assertEqual(homes, {"a", "b"})  # 20 clients: both used (odds of not: 2^-19)
        finally:
            usher.stop()

    def test_balance_least_connections_avoids_the_busy_backend(self):
        port, usher = start_quick(self.ports, "--balance", "least-connections", "--workers", "1")
        try:
            slow = {}
            t = threading.Thread(target=lambda: slow.setdefault("r", bodies(port, 1, path="/sleep?ms=1500")))
            t.start()
            time.sleep(0.3)
            fast = [b for _, b in bodies(port, 10)]
            t.join(timeout=5)
            busy = slow["r"][0][1]
            self.assertEqual(len(set(fast)), 1)
            self.assertNotEqual(fast[0], busy)  # round-robin would have sent five there
        finally:
            usher.stop()

    def test_an_unknown_algorithm_is_refused_naming_the_known_ones(self):
        run = subprocess.run([USHER, "proxy", "--listen", f"127.0.0.1:{free_port()}", "--to", "127.0.0.1:1",
                              "--balance", "fastest"], capture_output=True, text=True, timeout=10)
        self.assertEqual(run.returncode, 1)
        self.assertIn("unknown balance algorithm 'fastest'", run.stderr)
        self.assertIn("power-of-two", run.stderr)

    def test_health_path_removes_a_backend_failing_its_check(self):
        sick = start_backend("sick", health=500)
        try:
            port, usher = start_quick([self.ports[0], sick[0]], "--health-path", "/health")
            try:
                deadline = time.monotonic() + 8  # checks every second, 2 failures remove
                while "UP -> DOWN" not in usher.output() and time.monotonic() < deadline:
                    time.sleep(0.1)
                self.assertIn(f"backend=127.0.0.1:{sick[0]} UP -> DOWN", usher.output())
                self.assertEqual({b for _, b in bodies(port, 10)}, {"a"})
            finally:
                usher.stop()
        finally:
            sick[1].stop()


if __name__ == "__main__":
    unittest.main()
