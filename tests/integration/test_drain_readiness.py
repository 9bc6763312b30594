"""Readiness during a drain: after SIGTERM, /readyz answers 503 (so a load balancer in front stops
sending) while the in-flight request still finishes; /livez stays 200 until the process exits."""
import http.client
import signal
import threading
import time
import unittest

from harness import exchange, free_port, start_backend, start_usher, status_of, wait_port


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


if __name__ == "__main__":
    unittest.main()
