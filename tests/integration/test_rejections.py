"""Hostile and malformed requests: answered 400/414/431/501/505 and never forwarded; a malformed
chunked body (checked as it streams) never reaches the backend in full, checked on the backend."""
import socket
import threading
import time
import unittest

from harness import exchange, start_usher, status_of

H = b"Host: t\r\n"

CASES = [
    ("content-length with transfer-encoding", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ("transfer-encoding with content-length", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n", 400),
    ("differing content-lengths", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", 400),
    ("content-length list that differs", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 5, 6\r\n\r\nhello!", 400),
    ("malformed content-length", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 5x\r\n\r\nhello", 400),
    ("negative content-length", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: -5\r\n\r\n", 400),
    ("transfer-encoding not ending in chunked", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked, gzip\r\n\r\n", 400),
    ("unknown transfer-encoding only", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: identity\r\n\r\n", 400),
    ("chunked twice in one field", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n", 400),
    ("chunked in two fields", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ("obs-fold", b"GET / HTTP/1.1\r\n" + H + b"X-A: one\r\n two\r\n\r\n", 400),
    ("whitespace before colon", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n", 400),
    ("tab before colon", b"GET / HTTP/1.1\r\n" + H + b"X-A\t: 1\r\n\r\n", 400),
    ("CR inside a value", b"GET / HTTP/1.1\r\n" + H + b"X-A: a\rb\r\n\r\n", 400),
    ("LF inside a value", b"GET / HTTP/1.1\r\n" + H + b"X-A: a\nb\r\n\r\n", 400),
    ("NUL inside a value", b"GET / HTTP/1.1\r\n" + H + b"X-A: a\x00b\r\n\r\n", 400),
    ("invalid character in a field name", b"GET / HTTP/1.1\r\n" + H + b"X(A): 1\r\n\r\n", 400),
    ("invalid character in the method", b"G\x01T / HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("space in the target", b"GET /a b HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("missing host", b"GET / HTTP/1.1\r\n\r\n", 400),
    ("two hosts", b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    ("bad chunk size", b"POST /upload HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n", 400),
    ("chunk size overflow", b"POST /upload HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\nfffffffffffffffff1\r\nhello\r\n0\r\n\r\n", 400),
    ("chunk data longer than its size", b"POST /upload HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n2\r\nhello\r\n0\r\n\r\n", 400),
    ("request line too long", b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n" + H + b"\r\n", 414),
    ("header section too large", b"GET / HTTP/1.1\r\n" + H + b"".join(b"X-%d: %s\r\n" % (i, b"v" * 200) for i in range(90)) + b"\r\n", 431),
    ("too many header fields", b"GET / HTTP/1.1\r\n" + H + b"".join(b"X-%d: v\r\n" % i for i in range(120)) + b"\r\n", 431),
    ("HTTP/2.0 on an HTTP/1 connection", b"GET / HTTP/2.0\r\n" + H + b"\r\n", 505),
    ("CONNECT", b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", 501),
    ("bare LF line endings", b"GET / HTTP/1.1\nHost: t\n\n", 400),
]

# Bodies are not buffered: a chunked body is checked while it streams, after its head has gone
# to a backend. For these cases the guarantee (README.md) is that the backend gets at most the
# head and the well-formed start of the body, never its end, and that usher then closes that
# backend connection and never reuses it. Each maps to the offset of the first malformed body byte.
STREAMED = {
    "bad chunk size": 0,
    "chunk size overflow": 16,  # the 17th hex digit
    "chunk data longer than its size": 5,  # "2\r\nhe" then "l" where CRLF is due
}


class RecordingBackend:
    """A backend that keeps every byte each connection brought and sees each close, answering
    200 to every request it gets in full (Content-Length or chunked)."""

    def __init__(self):
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.lock = threading.Lock()
        self.connections = []  # [{"data": bytes, "closed": bool, "answered": int}]
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while True:
            try:
                sock, _ = self.server.accept()
            except OSError:
                return
            record = {"data": b"", "closed": False, "answered": 0}
            with self.lock:
                self.connections.append(record)
            threading.Thread(target=self.serve, args=(sock, record), daemon=True).start()

    def serve(self, sock, record):
        pending = b""
        with sock:
            while True:
                try:
                    data = sock.recv(65536)
                except OSError:
                    data = b""
                with self.lock:
                    record["data"] += data
                    record["closed"] = not data
                if not data:
                    return
                pending += data
                while b"\r\n\r\n" in pending:
                    head, _, rest = pending.partition(b"\r\n\r\n")
                    if b"transfer-encoding: chunked" in head.lower():
                        if b"\r\n0\r\n\r\n" not in b"\r\n" + rest:
                            break  # the body has not ended (and, malformed, never will)
                        rest = (b"\r\n" + rest).split(b"\r\n0\r\n\r\n", 1)[1]
                    pending = rest
                    with self.lock:
                        record["answered"] += 1
                    sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    def snapshot(self):
        with self.lock:
            return [dict(c) for c in self.connections]

    def stop(self):
        self.server.close()


def new_bytes(before, after):
    """What each connection received between two snapshots, by connection index."""
    out = {}
    for i, c in enumerate(after):
        old = before[i]["data"] if i < len(before) else b""
        if len(c["data"]) > len(old):
            out[i] = c["data"][len(old):]
    return out


class Rejections(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.backend = RecordingBackend()
        cls.port, cls.usher = start_usher([cls.backend.port], extra="timeouts: { client_header: 1s }\n")

    @classmethod
    def tearDownClass(cls):
        cls.usher.stop()
        cls.backend.stop()

    def test_every_rejection_case(self):
        for name, raw, expected in CASES:
            if name in STREAMED:
                continue
            with self.subTest(name):
                before = self.backend.snapshot()
                out = exchange(self.port, raw)
                self.assertEqual(status_of(out), expected, out[:200])
                self.assertIn(b"Connection: close", out)
                time.sleep(0.1)  # anything forwarded would have arrived by now
                self.assertEqual(new_bytes(before, self.backend.snapshot()), {},
                                 f"{name} reached the backend")

    def check_streamed(self, raw, bad_at, head_travels=False):
        head_end = raw.index(b"\r\n\r\n") + 4
        body = raw[head_end:]
        ok = exchange(self.port, b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", timeout=2)
        self.assertEqual(status_of(ok), 200)  # an idle upstream connection usher may reuse
        before = self.backend.snapshot()
        out = exchange(self.port, raw)
        self.assertEqual(status_of(out), 400, out[:200])
        self.assertIn(b"Connection: close", out)
        # Backend side: at most the head and the well-formed start of the body arrived, on one
        # connection, which usher then closes. (A body malformed from its first byte may be
        # refused before the head goes out: then nothing arrives at all, which is fine.)
        time.sleep(0.2)  # what was forwarded has arrived
        deadline = time.monotonic() + 2
        while True:
            after = self.backend.snapshot()
            got = new_bytes(before, after)
            if all(after[i]["closed"] for i in got) or time.monotonic() > deadline:
                break
            time.sleep(0.02)
        self.assertLessEqual(len(got), 1, got)
        carried = next(iter(got), None)
        if head_travels:
            self.assertIsNotNone(carried, "the head never reached the backend")
        if carried is not None:
            self.assertTrue(after[carried]["closed"], "usher kept the backend connection open")
            forwarded = got[carried]
            self.assertTrue(forwarded.startswith(b"POST /upload HTTP/1.1\r\n"), forwarded[:100])
            self.assertEqual(forwarded.count(b"\r\n\r\n"), 1, forwarded)
            sent_body = forwarded.split(b"\r\n\r\n", 1)[1]
            self.assertTrue(body.startswith(sent_body), sent_body)
            self.assertLessEqual(len(sent_body), bad_at, sent_body)
            was = before[carried]["answered"] if carried < len(before) else 0
            self.assertEqual(after[carried]["answered"], was, "the backend got the whole request")
        # Never reused: the next request reaches the backend on another connection.
        before = self.backend.snapshot()
        ok = exchange(self.port, b"GET /next HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", timeout=2)
        self.assertEqual(status_of(ok), 200)
        got = new_bytes(before, self.backend.snapshot())
        self.assertEqual(len(got), 1, got)
        if carried is not None:
            self.assertNotIn(carried, got)
        self.assertTrue(next(iter(got.values())).startswith(b"GET /next "))

    def test_streamed_malformed_bodies_never_reach_the_backend_in_full(self):
        for name, raw, _ in CASES:
            if name in STREAMED:
                with self.subTest(name):
                    self.check_streamed(raw, STREAMED[name])

    def test_malformed_chunk_after_a_good_one(self):
        # The first chunk is well formed and travels; the second ("5 ") never does.
        self.check_streamed(b"POST /upload HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked"
                            b"\r\n\r\n5\r\nhello\r\n5 \r\nworld\r\n0\r\n\r\n", 11, head_travels=True)

    def test_slowloris_gets_408(self):
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as s:
            s.sendall(b"GET / HTTP/1.1\r\n")
            started = time.monotonic()
            out = b""
            while True:
                data = s.recv(4096)
                if not data:
                    break
                out += data
        self.assertEqual(status_of(out), 408)
        self.assertLess(time.monotonic() - started, 3)



if __name__ == "__main__":
    unittest.main()
