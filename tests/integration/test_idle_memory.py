"""10 000 idle client connections held open through usher: RSS growth per idle connection stays
about 1 KiB (README, docs/benchmarks.md; bench/idle.sh measures 100 000 the same way: a first
wave warms usher's pools and leaves, the second wave is measured)."""
import os
import resource
import socket
import struct
import time
import unittest

from harness import rss_kib, start_backend, start_usher

CONNECTIONS = 10_000
BOUND_KIB = 1.1  # per idle connection; measured 0.88-0.89 (docs/benchmarks.md, "An idle connection's frame")


def open_idle(port, count, deadline):
    """Connections that each make one request, get its answer, then stay open doing nothing.
    One at a time: a burst would need as many upstream connections."""
    socks, answered = [], 0
    for i in range(count):
        if time.monotonic() > deadline:
            break
        s = socket.socket()
        socks.append(s)
        s.bind((f"127.0.0.{2 + i % 16}", 0))
        s.settimeout(5)
        s.connect(("127.0.0.1", port))
        s.sendall(b"GET / HTTP/1.1\r\nHost: idle\r\n\r\n")
        answered += s.recv(4096).startswith(b"HTTP/1.1 200")
    return socks, answered


def reset_all(socks):
    for s in socks:  # reset, not FIN: no TIME_WAIT holding ports for the next wave
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()


class IdleConnections(unittest.TestCase):
    def setUp(self):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        need = CONNECTIONS + 500  # for us, and for usher (a child inherits the limit)
        if hard != resource.RLIM_INFINITY and hard < need:
            self.skipTest(f"the descriptor hard limit {hard} is below {need}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, need), hard))
        self.backend_port, self.backend = start_backend("a")
        self.port, self.usher = start_usher([self.backend_port], workers=1)
        self.socks = []

    def tearDown(self):
        reset_all(self.socks)
        self.usher.stop()
        self.backend.stop()

    def test_rss_growth_per_idle_connection_is_about_one_kib(self):
        started = time.monotonic()
        warm, answered = open_idle(self.port, CONNECTIONS, started + 20)
        reset_all(warm)
        self.assertEqual(answered, CONNECTIONS)
        time.sleep(2)
        base = rss_kib(self.usher.pid)
        self.socks, answered = open_idle(self.port, CONNECTIONS, started + 45)
        self.assertEqual(answered, CONNECTIONS)
        time.sleep(2)  # idle: nothing left over from the burst
        with_connections = rss_kib(self.usher.pid)
        self.assertIsNone(self.usher.proc.poll())
        per_connection = (with_connections - base) / CONNECTIONS
        print(f"\nusher RSS {base / 1024:.1f} MiB before, {with_connections / 1024:.1f} MiB with "
              f"{CONNECTIONS} idle connections: {per_connection:.2f} KiB each "
              f"({time.monotonic() - started:.0f} s)")
        if not os.environ.get("USHER_SANITIZED"):  # shadow memory and quarantine under ASan
            self.assertLess(per_connection, BOUND_KIB)
        # Still served, every one of them: idle means parked, not dropped.
        for s in self.socks[:: CONNECTIONS // 20]:
            s.sendall(b"GET / HTTP/1.1\r\nHost: idle\r\n\r\n")
            self.assertTrue(s.recv(4096).startswith(b"HTTP/1.1 200"))


if __name__ == "__main__":
    unittest.main()
