"""Process lifecycle: SIGTERM drains in-flight requests and exits 0; idle connections close."""
import signal
import socket
import threading
import time
import unittest

from harness import backend_stats, exchange, read_until_close, start_backend, start_usher, status_of


class Drain(unittest.TestCase):
    def setUp(self):
        self.backend_port, self.backend = start_backend("a")
        self.port, self.usher = start_usher([self.backend_port], workers=2,
                                            extra="timeouts: { drain: 5s }\n")

    def tearDown(self):
        self.usher.stop()
        self.backend.stop()

    def test_sigterm_lets_in_flight_requests_finish_then_exits_0(self):
        results = {}

        def slow_request():
            results["slow"] = exchange(self.port, b"GET /sleep?ms=1000 HTTP/1.1\r\nHost: t\r\n\r\n", timeout=5)

        idle = socket.create_connection(("127.0.0.1", self.port))
        idle.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        self.assertEqual(status_of(idle.recv(4096)), 200)
        worker = threading.Thread(target=slow_request)
        worker.start()
        time.sleep(0.3)
        started = time.monotonic()
        self.usher.signal(signal.SIGTERM)
        # The idle keep-alive connection closes once the grace for a last request (1 s) ends.
        self.assertEqual(read_until_close(idle, 2), b"")
        idle.close()
        worker.join()
        self.assertEqual(status_of(results["slow"]), 200)
        self.assertIn(b"Connection: close", results["slow"])
        self.assertEqual(self.usher.wait(5), 0)
        self.assertLess(time.monotonic() - started, 3)
        with self.assertRaises(OSError):
            socket.create_connection(("127.0.0.1", self.port), timeout=1)

    def test_second_sigterm_exits_at_once(self):
        t = threading.Thread(target=lambda: exchange(self.port, b"GET /sleep?ms=4000 HTTP/1.1\r\nHost: t\r\n\r\n", timeout=6))
        t.start()
        time.sleep(0.3)
        self.usher.signal(signal.SIGTERM)
        time.sleep(0.2)
        started = time.monotonic()
        self.usher.signal(signal.SIGTERM)
        self.assertEqual(self.usher.wait(5), 0)
        self.assertLess(time.monotonic() - started, 1.5)
        t.join()


class IdleTimeout(unittest.TestCase):
    def test_idle_keep_alive_connection_is_closed(self):
        backend_port, backend = start_backend("a")
        port, usher = start_usher([backend_port], extra="timeouts: { client_idle: 1s }\n")
        try:
            with socket.create_connection(("127.0.0.1", port)) as s:
                s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
                self.assertEqual(status_of(s.recv(4096)), 200)
                started = time.monotonic()
                self.assertEqual(read_until_close(s, 5), b"")
                self.assertLess(time.monotonic() - started, 3)
        finally:
            usher.stop()
            backend.stop()


if __name__ == "__main__":
    unittest.main()
