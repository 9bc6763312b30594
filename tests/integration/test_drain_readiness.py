"""Readiness during a drain: after SIGTERM, /readyz answers 503 (so a load balancer in front stops
sending) while the in-flight request still finishes; /livez stays 200 until the process exits."""
import http.client
import signal
import subprocess
import threading
import time
import unittest

from harness import USHER, Process, exchange, free_port, start_backend, start_usher, status_of, wait_port, write_config


def admin_get(port, path):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    conn.request("GET", path)
    response = conn.getresponse()
    body = response.read()
    conn.close()
    return response.status, body


class ReadyDuringDrain(unittest.TestCase):
    def test_readyz_is_503_while_a_slow_request_drains(self):
        backend_port, backend = start_backend("a")
        admin_port = free_port()
        port, usher = start_usher([backend_port], workers=2,
                                  extra=f"admin: {{ listen: 127.0.0.1:{admin_port} }}\ntimeouts: {{ drain: 10s }}\n")
        results = {}
        try:
            wait_port(admin_port)
            self.assertEqual(admin_get(admin_port, "/readyz"), (200, b"ready\n"))
            slow = threading.Thread(target=lambda: results.setdefault(
                "slow", exchange(port, b"GET /sleep?ms=2000 HTTP/1.1\r\nHost: t\r\n\r\n", timeout=8)))
            slow.start()
            time.sleep(0.3)
            signalled = time.monotonic()
            usher.signal(signal.SIGTERM)
            seen = []
            deadline = signalled + 1.0
            while time.monotonic() < deadline:
                seen.append(admin_get(admin_port, "/readyz"))
                if seen[-1][0] == 503:
                    break
                time.sleep(0.02)
            became_unready = time.monotonic() - signalled
            self.assertEqual(seen[-1], (503, b"draining\n"))
            self.assertLess(became_unready, 0.5)
            # Still draining: the slow request is in flight, the process alive and saying so.
            time.sleep(0.3)
            self.assertIsNone(usher.proc.poll())
            self.assertEqual(admin_get(admin_port, "/readyz")[0], 503)
            self.assertEqual(admin_get(admin_port, "/livez"), (200, b"ok\n"))
            slow.join(timeout=10)
            self.assertEqual(status_of(results["slow"]), 200)
            self.assertTrue(results["slow"].endswith(b"a"))
            self.assertEqual(usher.wait(5), 0)
        finally:
            usher.stop()
            backend.stop()


class CtlDrainByName(unittest.TestCase):
    def test_usher_ctl_drain_takes_a_backend_out_by_its_name(self):
        # README: `usher ctl drain web app-1`.
        backends = [start_backend(n) for n in ("a", "b")]
        admin_port, port = free_port(), free_port()
        config = write_config(
            f"workers: 1\nadmin: {{ listen: 127.0.0.1:{admin_port} }}\n"
            f"listeners:\n  - {{ name: web, listen: 127.0.0.1:{port}, pool: web }}\n"
            f"pools:\n  - name: web\n    backends:\n"
            f"      - {{ address: 127.0.0.1:{backends[0][0]}, name: app-1 }}\n"
            f"      - {{ address: 127.0.0.1:{backends[1][0]}, name: app-2 }}\n")
        usher = Process([USHER, "run", "-c", config], port=port)
        try:
            wait_port(admin_port)
            ctl = subprocess.run([USHER, "ctl", "--admin", f"127.0.0.1:{admin_port}", "drain", "web", "app-1"],
                                 capture_output=True, text=True, timeout=10)
            self.assertEqual(ctl.returncode, 0, ctl.stdout + ctl.stderr)
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            names = []
            for _ in range(6):
                conn.request("GET", "/")
                names.append(conn.getresponse().read().decode())
            conn.close()
            self.assertEqual(names, ["b"] * 6)
        finally:
            usher.stop()
            for _, b in backends:
                b.stop()


if __name__ == "__main__":
    unittest.main()
