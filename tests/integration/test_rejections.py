"""Hostile and malformed requests: answered 400/414/431/501/505 and never forwarded."""
import socket
import time
import unittest

from harness import ProxyTestCase, backend_stats, exchange, status_of

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

# Bodies of chunked requests are checked while streaming: the head has already gone out, so
# for these the guarantee is that the malformed chunk itself never reaches the backend.
STREAMED = {"bad chunk size", "chunk size overflow", "chunk data longer than its size"}


def settled_requests(port):
    """The backend's request count once nothing is still arriving (a streamed case's head may
    reach the backend a moment after usher answered the client)."""
    count = backend_stats(port)["requests"]
    for _ in range(40):
        time.sleep(0.05)
        now = backend_stats(port)["requests"]
        if now == count + 1:  # only the stats request itself came in
            return now
        count = now
    return count


class Rejections(ProxyTestCase):
    backend_names = ("a",)

    def test_every_rejection_case(self):
        for name, raw, expected in CASES:
            with self.subTest(name):
                before = settled_requests(self.backend_ports[0])
                out = exchange(self.port, raw)
                self.assertEqual(status_of(out), expected, out[:200])
                self.assertIn(b"Connection: close", out)
                after = backend_stats(self.backend_ports[0])["requests"]
                forwarded = after - before - 1  # the stats request itself
                if name in STREAMED:
                    self.assertLessEqual(forwarded, 1)
                else:
                    self.assertEqual(forwarded, 0, f"{name} reached the backend")

    def test_malformed_chunk_never_reaches_the_backend_in_full(self):
        # The upload endpoint hashes what it got: an ambiguous body must not complete there.
        out = exchange(self.port, b"POST /upload HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                                  b"5\r\nhello\r\n5 \r\nworld\r\n0\r\n\r\n")
        self.assertEqual(status_of(out), 400)
        self.assertNotIn(b"10 ", out)

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

    extra = "timeouts: { client_header: 1s }\n"


if __name__ == "__main__":
    unittest.main()
