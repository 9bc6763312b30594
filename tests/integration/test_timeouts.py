"""Timeouts that end a wait on a backend or a tunnel: per_try_timeout, the connect timeout against a
backend that never completes the handshake, and the inactivity timeout of an upgraded tunnel."""
import base64
import http.client
import os
import socket
import time
import unittest

from harness import start_backend, start_usher, status_of
from recorder import Recorder, full_listener


def timed_get(port, path="/", timeout=10):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    started = time.monotonic()
    conn.request("GET", path)
    response = conn.getresponse()
    body = response.read().decode()
    conn.close()
    return response.status, body, time.monotonic() - started


class PerTryTimeout(unittest.TestCase):
    def test_a_hung_backend_is_abandoned_after_per_try_timeout_and_the_next_answers(self):
        hung, good = Recorder("hung", "hang"), Recorder("good")
        port, usher = start_usher([hung.port, good.port], pool_extra=(
            "    timeouts: { response: 10s }\n"
            "    retries: { per_try_timeout: 300ms }\n"))
        try:
            results = [timed_get(port) for _ in range(4)]  # round-robin: half start on the hung one
            print("\n", [(s, b, round(t, 3)) for s, b, t in results])
            self.assertEqual([(s, b) for s, b, _ in results], [(200, "good")] * 4)
            self.assertEqual(hung.count(), 2)
            self.assertEqual(good.count(), 4)
            slow = sorted(t for _, _, t in results)[2:]
            fast = sorted(t for _, _, t in results)[:2]
            for t in slow:  # per_try_timeout plus a backoff of at most 1.5 x 25 ms, not 10 s
                self.assertGreaterEqual(t, 0.29)
                self.assertLess(t, 1.5)
            for t in fast:
                self.assertLess(t, 0.25)
        finally:
            usher.stop()
            hung.stop()
            good.stop()

    def test_without_it_a_timed_out_try_is_not_retried(self):
        hung, good = Recorder("hung", "hang"), Recorder("good")
        port, usher = start_usher([hung.port, good.port], pool_extra="    timeouts: { response: 600ms }\n")
        try:
            results = [timed_get(port) for _ in range(2)]
            statuses = sorted(s for s, _, _ in results)
            self.assertEqual(statuses, [200, 504])
            took = [t for s, _, t in results if s == 504][0]
            self.assertGreaterEqual(took, 0.59)
            self.assertLess(took, 2.0)
            self.assertEqual(good.count(), 1)  # the 504 was not retried on the good backend
        finally:
            usher.stop()
            hung.stop()
            good.stop()


class ConnectTimeout(unittest.TestCase):
    """The backend's accept queue is full and never drained: its SYNs go unanswered."""

    def setUp(self):
        self.listener, self.fillers, self.full_port = full_listener()

    def tearDown(self):
        for s in self.fillers:
            s.close()
        self.listener.close()

    def test_a_handshake_that_never_completes_is_a_504_after_the_connect_timeout(self):
        port, usher = start_usher([self.full_port], pool_extra=(
            "    timeouts: { connect: 500ms, response: 10s }\n"
            "    retries: { attempts: 1 }\n"))
        try:
            status, _, took = timed_get(port)
            print(f"\nconnect timeout answered {status} after {took * 1000:.0f} ms")
            self.assertEqual(status, 504)
            self.assertGreaterEqual(took, 0.49)
            self.assertLess(took, 1.5)
        finally:
            usher.stop()

    def test_a_connect_timeout_fails_over_to_the_next_backend(self):
        good = Recorder("good")
        port, usher = start_usher([self.full_port, good.port], pool_extra=(
            "    timeouts: { connect: 400ms, response: 10s }\n"))
        try:
            results = [timed_get(port) for _ in range(4)]
            print("\n", [(s, b, round(t, 3)) for s, b, t in results])
            self.assertEqual([(s, b) for s, b, _ in results], [(200, "good")] * 4)
            times = sorted(t for _, _, t in results)
            self.assertLess(times[1], 0.25)  # those that went to the good one first
            self.assertGreaterEqual(times[2], 0.39)  # the others waited the connect timeout once
            self.assertLess(times[3], 1.5)
        finally:
            usher.stop()
            good.stop()


def ws_frame(payload):
    """A masked client text frame (RFC 6455), payload under 126 bytes."""
    mask = os.urandom(4)
    return bytes([0x81, 0x80 | len(payload)]) + mask + bytes(c ^ mask[i % 4] for i, c in enumerate(payload))


def ws_handshake(port, path="/ws"):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    key = base64.b64encode(os.urandom(16))
    s.sendall(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              b"Sec-WebSocket-Key: " + key + b"\r\nSec-WebSocket-Version: 13\r\n\r\n")
    head = b""
    while b"\r\n\r\n" not in head:
        data = s.recv(4096)
        if not data:
            break
        head += data
    return s, head


def recv_exact(s, n):
    out = b""
    while len(out) < n:
        data = s.recv(n - len(out))
        if not data:
            raise EOFError(f"closed after {len(out)} of {n} bytes")
        out += data
    return out


def closed_within(s, timeout):
    """Seconds until the peer closes the connection, or None if it stays open for `timeout`."""
    s.settimeout(timeout)
    started = time.monotonic()
    try:
        while True:
            data = s.recv(4096)
            if not data:
                return time.monotonic() - started
    except ConnectionResetError:
        return time.monotonic() - started
    except socket.timeout:
        return None


class TunnelTimeout(unittest.TestCase):
    TUNNEL_MS = 500

    @classmethod
    def setUpClass(cls):
        cls.backend = start_backend("a")
        cls.port, cls.usher = start_usher([cls.backend[0]], extra=f"timeouts: {{ tunnel: {cls.TUNNEL_MS}ms }}\n")

    @classmethod
    def tearDownClass(cls):
        cls.usher.stop()
        cls.backend[1].stop()

    def echo(self, s, text):
        s.sendall(ws_frame(text))
        self.assertEqual(recv_exact(s, 2 + len(text)), bytes([0x81, len(text)]) + text)

    def test_an_idle_tunnel_is_closed_after_the_tunnel_timeout(self):
        s, head = ws_handshake(self.port)
        with s:
            self.assertEqual(status_of(head), 101)
            self.echo(s, b"hello")
            took = closed_within(s, 5)
            print(f"\nidle tunnel closed after {took and took * 1000:.0f} ms")
            self.assertIsNotNone(took, "the idle tunnel stayed open")
            self.assertGreaterEqual(took, self.TUNNEL_MS / 1000 * 0.9)
            self.assertLess(took, self.TUNNEL_MS / 1000 + 1.0)

    def test_a_tunnel_busy_both_ways_outlives_the_timeout(self):
        s, head = ws_handshake(self.port)
        with s:
            self.assertEqual(status_of(head), 101)
            started = time.monotonic()
            for i in range(12):  # 12 x 150 ms = 1.8 s, over three tunnel timeouts
                self.echo(s, b"ping %d" % i)
                time.sleep(0.15)
            self.assertGreater(time.monotonic() - started, 3 * self.TUNNEL_MS / 1000)

    def test_a_tunnel_busy_one_way_outlives_the_timeout(self):
        # A server pushing to a silent client (notifications, a log tail) is not an idle tunnel:
        # the timeout is for inactivity on the connection (config.h: "inactivity on an upgraded
        # connection"; HAProxy's `timeout tunnel` likewise counts both directions).
        pusher = Recorder("push", "push:100")
        port, usher = start_usher([pusher.port], extra=f"timeouts: {{ tunnel: {self.TUNNEL_MS}ms }}\n")
        try:
            s, head = ws_handshake(port, "/")
            with s:
                self.assertEqual(status_of(head), 101)
                s.settimeout(1)
                received, deadline = b"", time.monotonic() + 1.8
                while time.monotonic() < deadline:
                    data = s.recv(64)
                    if not data:
                        break
                    received += data
                self.assertGreaterEqual(len(received), 12, "the tunnel closed while bytes flowed")
        finally:
            usher.stop()
            pusher.stop()


if __name__ == "__main__":
    unittest.main()
