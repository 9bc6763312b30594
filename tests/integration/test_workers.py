"""`workers: auto` runs one event loop per core, each with its own listening socket
(SO_REUSEPORT), and every one of them serves."""
import os
import socket
import time
import unittest

from harness import start_backend, start_usher


def listening_sockets(port):
    """How many sockets listen on 127.0.0.1:port, from /proc/net/tcp (any process)."""
    count = 0
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            local, state = fields[1], fields[3]
            if state == "0A" and int(local.split(":")[1], 16) == port:
                count += 1
    return count


class Workers(unittest.TestCase):
    def test_auto_is_one_event_loop_per_core(self):
        cores = os.cpu_count()
        backend_port, backend = start_backend("a")
        port, usher = start_usher([backend_port], workers="auto")
        try:
            # The line comes once every worker runs, which may be just after the port opens.
            deadline = time.monotonic() + 10
            while f"({cores} workers)" not in usher.output() and time.monotonic() < deadline:
                time.sleep(0.02)
            self.assertIn(f"({cores} workers)", usher.output())
            self.assertEqual(listening_sockets(port), cores)
            threads = len(os.listdir(f"/proc/{usher.pid}/task"))
            self.assertGreaterEqual(threads, cores + 1)  # the workers and the main thread
            # Each listening socket is served: the kernel spreads connections over them by a hash
            # of the client port, so with a dead loop some of 50 connections would go unanswered.
            for _ in range(50):
                with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                    s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                    self.assertTrue(s.recv(4096).startswith(b"HTTP/1.1 200"))
        finally:
            usher.stop()
            backend.stop()


if __name__ == "__main__":
    unittest.main()
