"""WebSocket tunnels and the drain: a WebSocket opened before SIGTERM keeps working until it
closes by itself, or until the drain timeout ends it with a Close frame (1001, Going Away) to the
client and a masked one to the backend; usher then exits 0."""
import base64
import os
import signal
import socket
import ssl
import time
import unittest

from harness import backend_stats, connect, start_backend, start_usher


class WebSocket:
    """A client WebSocket through usher to the test backend's echo endpoint (TLS under
    USHER_TEST_TLS=1)."""

    def __init__(self, port):
        self.sock = connect(port)
        key = base64.b64encode(os.urandom(16))
        self.sock.sendall(b"GET /ws HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                          b"Sec-WebSocket-Key: " + key + b"\r\nSec-WebSocket-Version: 13\r\n\r\n")
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        if not head.startswith(b"HTTP/1.1 101"):
            raise ConnectionError(head.decode(errors="replace"))

    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise EOFError
        self.buf += data

    def send(self, opcode, payload):
        mask = os.urandom(4)
        masked = bytes(c ^ mask[i % 4] for i, c in enumerate(payload))
        self.sock.sendall(bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + masked)

    def receive(self, timeout=5):
        """The next (opcode, payload) from the server, or None when the stream ends."""
        self.sock.settimeout(timeout)
        try:
            while len(self.buf) < 2:
                self._fill()
            length, start = self.buf[1] & 0x7F, 2
            if length == 126:
                while len(self.buf) < 4:
                    self._fill()
                length, start = int.from_bytes(self.buf[2:4], "big"), 4
            while len(self.buf) < start + length:
                self._fill()
        except (EOFError, ConnectionResetError, ssl.SSLEOFError):
            return None
        opcode, payload = self.buf[0] & 0x0F, self.buf[start:start + length]
        self.buf = self.buf[start + length:]
        return opcode, payload

    def echo(self, message):
        self.send(0x1, message)
        return self.receive()

    def close(self):
        self.sock.close()


GOING_AWAY = (0x8, (1001).to_bytes(2, "big"))


class WebSocketDrain(unittest.TestCase):
    def start(self, drain):
        self.backend_port, self.backend = start_backend("a")
        self.addCleanup(self.backend.stop)
        self.port, self.usher = start_usher([self.backend_port], workers=2,
                                            extra=f"timeouts: {{ drain: {drain} }}\n")
        self.addCleanup(self.usher.stop)

    def test_a_websocket_works_through_the_drain_and_its_end_closes_it_with_1001(self):
        self.start("2s")
        sockets = [WebSocket(self.port) for _ in range(3)]  # on both workers, most likely
        for ws in sockets:
            self.addCleanup(ws.close)
            self.assertEqual(ws.echo(b"before"), (0x1, b"before"))
        started = time.monotonic()
        self.usher.signal(signal.SIGTERM)
        for pause in (0.4, 0.8):
            time.sleep(pause)
            for ws in sockets:
                self.assertEqual(ws.echo(b"draining"), (0x1, b"draining"))
        with socket.socket() as late:  # the listener is closed
            self.assertNotEqual(late.connect_ex(("127.0.0.1", self.port)), 0)
        for ws in sockets:
            self.assertEqual(ws.receive(), GOING_AWAY)
            elapsed = time.monotonic() - started
            self.assertGreater(elapsed, 1.8)
            self.assertLess(elapsed, 2.6)  # when the drain times out, not a while after
            ws.send(0x8, (1001).to_bytes(2, "big"))  # a client answers the Close
            self.assertIsNone(ws.receive())  # and the stream ends
            ws.close()
        self.assertEqual(self.usher.wait(5), 0)
        self.assertLess(time.monotonic() - started, 3)
        self.assertIn("closing the WebSocket tunnels", self.usher.output())
        closes = backend_stats(self.backend_port)["ws_closes"]
        self.assertEqual(closes, [{"masked": True, "code": 1001}] * len(sockets))

    def test_a_websocket_that_closes_during_the_drain_lets_usher_exit_before_its_end(self):
        self.start("10s")
        ws = WebSocket(self.port)
        self.addCleanup(ws.close)
        self.assertEqual(ws.echo(b"before"), (0x1, b"before"))
        started = time.monotonic()
        self.usher.signal(signal.SIGTERM)
        time.sleep(0.3)
        self.assertEqual(ws.echo(b"draining"), (0x1, b"draining"))
        ws.send(0x8, (1000).to_bytes(2, "big"))
        self.assertEqual(ws.receive(), (0x8, b""))  # the backend's answer
        self.assertIsNone(ws.receive())
        ws.close()
        self.assertEqual(self.usher.wait(5), 0)
        self.assertLess(time.monotonic() - started, 3)
        self.assertNotIn("closing the WebSocket tunnels", self.usher.output())
        self.assertEqual(backend_stats(self.backend_port)["ws_closes"], [{"masked": True, "code": 1000}])


if __name__ == "__main__":
    unittest.main()
