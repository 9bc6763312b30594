"""Backends that fail in one precise way, and what the client and the metrics see: a malformed
body before any byte went out (502, a protocol error), codings that would leave the body delimited
by the close (502), an upload to a backend that reads slowly or stops reading (the response timeout
waits for the whole request; a stall is a 504 timeout), and a lone backend that closed without
answering (502 at once, no second wait on it)."""
import http.client
import re
import socket
import threading
import time
import unittest

from harness import free_port, start_usher, status_of
from recorder import Recorder, full_listener


class FaultBackend:
    """A loopback listener whose connections `serve(conn)` handles, each in its own thread. After
    `accepts` connections it takes no more, though the kernel still completes handshakes into its
    queue: a server that is up but no longer serving."""

    def __init__(self, serve, accepts=None, rcvbuf=None):
        self.serve = serve
        self.accepts = accepts
        self.accepted = 0
        self.conns = []
        self.stopping = threading.Event()
        self.sock = socket.socket()
        if rcvbuf:  # inherited by accepted sockets: caps how much a slow reader lets in
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.settimeout(0.05)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stopping.is_set() and (self.accepts is None or self.accepted < self.accepts):
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            conn.settimeout(10)
            self.accepted += 1
            self.conns.append(conn)
            threading.Thread(target=self._run, args=(conn,), daemon=True).start()

    def _run(self, conn):
        try:
            self.serve(conn)
        except (OSError, EOFError):  # the peer went away: the test decides what that means
            pass

    def stop(self):
        self.stopping.set()
        for conn in self.conns:
            conn.close()
        self.sock.close()


def read_head(conn):
    """The request head, and the body bytes that came with it."""
    data = b""
    while b"\r\n\r\n" not in data:
        piece = conn.recv(65536)
        if not piece:
            raise EOFError
        data += piece
    head, rest = data.split(b"\r\n\r\n", 1)
    return head.decode("latin-1"), rest


def content_length(head):
    match = re.search(r"(?im)^content-length:\s*(\d+)", head)
    return int(match.group(1)) if match else 0


class Answers:
    """Reads a request head and writes `response` in one write, then closes or holds the
    connection until the test ends; counts the requests."""

    def __init__(self, response, close=False):
        self.response = response
        self.close = close
        self.requests = 0

    def __call__(self, conn):
        read_head(conn)
        self.requests += 1
        conn.sendall(self.response)
        if self.close:
            conn.close()
        else:
            conn.recv(1)


def metrics(admin):
    conn = http.client.HTTPConnection("127.0.0.1", admin, timeout=5)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    conn.close()
    samples = {}
    for line in text.splitlines():
        match = re.match(r'^([a-z_]+)\{(.*)\} (\S+)$', line)
        if match:
            labels = frozenset(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match.group(2)))
            samples[(match.group(1), labels)] = float(match.group(3))
    return samples


def value(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())), 0)


def raw_get(port, timeout=5):
    """GET / on a connection of its own: the status (None when nothing came), the bytes received
    until the close, whether it was a reset, and the seconds it took."""
    started = time.monotonic()
    out, reset = b"", False
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        try:
            while True:
                data = s.recv(65536)
                if not data:
                    break
                out += data
        except ConnectionResetError:
            reset = True
    return status_of(out), out, reset, time.monotonic() - started


def read_response(s):
    """The status and the Content-Length body of the response on `s`."""
    out = b""
    try:
        while b"\r\n\r\n" not in out:
            data = s.recv(65536)
            if not data:
                return status_of(out), b""
            out += data
        head, body = out.split(b"\r\n\r\n", 1)
        want = content_length(head.decode("latin-1"))
        while len(body) < want:
            data = s.recv(65536)
            if not data:
                break
            body += data
    except ConnectionResetError:
        return status_of(out), b""
    return status_of(out), body


class Faults(unittest.TestCase):
    """One backend per test, an admin listener for the counters."""

    def start(self, backend, pool_extra="", extra=""):
        self.backend = backend
        self.admin = free_port()
        self.port, self.usher = start_usher(
            [backend.port], extra=f"admin: {{ listen: 127.0.0.1:{self.admin} }}\n{extra}",
            pool_extra=pool_extra)
        self.addCleanup(self.backend.stop)
        self.addCleanup(self.usher.stop)
        self.name = f"127.0.0.1:{backend.port}"

    def counted(self, name, **labels):
        return value(metrics(self.admin), name, pool="web", backend=self.name, **labels)


class MalformedBody(Faults):
    BAD = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"

    def test_before_any_byte_went_out_it_is_a_502_and_a_protocol_error(self):
        bad = Answers(self.BAD)
        self.start(FaultBackend(bad), pool_extra=(
            "    health: { type: tcp, interval: 10s }\n"
            "    outlier: { consecutive_failures: 2, base_ejection: 10s, max_ejection_percent: 100 }\n"))
        status, out, _, _ = raw_get(self.port)
        self.assertEqual(status, 502, out)
        self.assertEqual(self.counted("usher_backend_errors_total", kind="protocol"), 1)
        self.assertEqual(self.counted("usher_backend_requests_total", code="2xx"), 0)
        self.assertEqual(bad.requests, 1)  # a response that came is not asked for again
        # A failure like any other for passive checks: the second in a row ejects the backend.
        self.assertEqual(raw_get(self.port)[0], 502)
        self.assertIn(f"backend={self.name} UP -> EJECTED for 10000 ms after 2 consecutive failures",
                      self.usher.output())

    def test_after_bytes_went_out_the_client_connection_is_reset(self):
        def serve(conn):
            read_head(conn)
            conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
            time.sleep(0.3)  # the head and the good chunk reach the client first
            conn.sendall(b"zz\r\n")
            conn.recv(1)

        self.start(FaultBackend(serve))
        status, out, reset, _ = raw_get(self.port)
        self.assertEqual(status, 200)
        self.assertTrue(out.endswith(b"5\r\nhello\r\n"), out)
        self.assertTrue(reset, "a cut body must not end like a whole one")
        self.assertEqual(self.counted("usher_backend_requests_total", code="2xx"), 1)


class CodingsAfterChunked(Faults):
    def check_refused(self, codings):
        body = b"\x1f\x8b\x08\x00 not really gzip"
        self.start(FaultBackend(Answers(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: " + codings + b"\r\nConnection: close\r\n\r\n" + body,
            close=True)))
        status, out, _, _ = raw_get(self.port)
        self.assertEqual(status, 502, out)
        self.assertNotIn(body, out)
        self.assertEqual(self.counted("usher_backend_errors_total", kind="protocol"), 1)
        self.assertEqual(self.counted("usher_backend_requests_total", code="2xx"), 0)

    def test_chunked_then_gzip_is_a_502(self):
        self.check_refused(b"chunked, gzip")

    def test_gzip_alone_is_a_502(self):
        self.check_refused(b"gzip")

    def test_gzip_then_chunked_keeps_its_codings(self):
        self.start(FaultBackend(Answers(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")))
        status, out, _, _ = raw_get(self.port)
        self.assertEqual(status, 200, out)
        self.assertIn(b"\r\nTransfer-Encoding: gzip, chunked\r\n", out)
        self.assertTrue(out.endswith(b"\r\n\r\n3\r\nabc\r\n0\r\n\r\n"), out)


UPLOAD = 8 << 20  # past what loopback socket buffers hold, so usher is still sending in the pause


def pausing_reader(pause, then_read):
    """Reads 256 KiB of the body, pauses, then (if `then_read`) reads the rest and answers with
    the length it read."""
    def serve(conn):
        head, body = read_head(conn)
        want, got = content_length(head), len(body)
        while got < min(want, 256 << 10):
            got += len(conn.recv(65536))
        time.sleep(pause)
        if not then_read:
            conn.recv(1)  # the test's end closes it
            return
        while got < want:
            piece = conn.recv(1 << 20)
            if not piece:
                return
            got += len(piece)
        text = str(got).encode()
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(text) + text)
    return serve


def upload(port, size, timeout=20):
    """POSTs `size` bytes from a thread (usher stops reading while the backend does) and returns
    the status, the body and the seconds to the response."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    started = time.monotonic()

    def send():
        try:
            s.sendall(b"POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % size)
            s.sendall(b"x" * size)
        except OSError:
            pass  # answered early: the rest is refused

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    status, body = read_response(s)
    took = time.monotonic() - started
    s.close()
    sender.join(5)
    return status, body, took


class SlowUpload(Faults):
    def test_a_backend_still_reading_is_not_cut_by_the_response_timeout(self):
        # It pauses longer than the response timeout mid-body, then reads on and answers at once.
        self.start(FaultBackend(pausing_reader(1.6, True), rcvbuf=64 << 10),
                   pool_extra="    timeouts: { response: 1s }\n")
        status, body, took = upload(self.port, UPLOAD)
        print(f"\nslow upload answered {status} after {took:.2f} s")
        self.assertEqual((status, body), (200, str(UPLOAD).encode()))
        self.assertGreater(took, 1.5)
        for kind in ("reset", "timeout"):
            self.assertEqual(self.counted("usher_backend_errors_total", kind=kind), 0, kind)

    def test_a_backend_that_stops_reading_is_a_504_timeout_after_the_body_timeout(self):
        self.start(FaultBackend(pausing_reader(30, False), rcvbuf=64 << 10),
                   pool_extra="    timeouts: { response: 5s }\n",
                   extra="timeouts: { client_body: 1s }\n")
        status, _, took = upload(self.port, UPLOAD)
        print(f"\nstalled upload answered {status} after {took:.2f} s")
        self.assertEqual(status, 504)
        self.assertGreaterEqual(took, 0.9)
        self.assertLess(took, 3.0)
        self.assertEqual(self.counted("usher_backend_errors_total", kind="timeout"), 1)
        self.assertEqual(self.counted("usher_backend_errors_total", kind="reset"), 0)


def closes_unanswered(conn):
    read_head(conn)
    conn.close()


class LoneBackendClosed(Faults):
    def test_the_client_gets_502_at_once_without_a_retry_on_it(self):
        # It serves one connection and then no more: a retry on it would wait the response timeout.
        self.start(FaultBackend(closes_unanswered, accepts=1),
                   pool_extra="    timeouts: { response: 3s }\n")
        status, out, _, took = raw_get(self.port)
        print(f"\nlone backend closed: {status} after {took * 1000:.0f} ms")
        self.assertEqual(status, 502, out)
        self.assertLess(took, 1.0)
        self.assertEqual(self.counted("usher_backend_errors_total", kind="reset"), 1)
        samples = metrics(self.admin)
        self.assertEqual(value(samples, "usher_pool_retries_total", pool="web"), 0)

    def test_a_timed_out_try_is_not_repeated_on_the_only_backend(self):
        hung = Recorder("hung", "hang")
        port, usher = start_usher([hung.port], pool_extra=(
            "    timeouts: { response: 10s }\n"
            "    retries: { attempts: 3, per_try_timeout: 300ms }\n"))
        try:
            status, _, _, took = raw_get(port)
            self.assertEqual(status, 504)
            self.assertLess(took, 0.6)  # one per-try timeout, not three
            self.assertEqual(hung.count(), 1)
        finally:
            usher.stop()
            hung.stop()

    def test_with_another_backend_the_retry_goes_there(self):
        good = Recorder("good")
        closing = FaultBackend(closes_unanswered)
        port, usher = start_usher([closing.port, good.port])
        try:
            for _ in range(4):  # round-robin: half start on the closing one
                status, out, _, _ = raw_get(port)
                self.assertEqual(status, 200, out)
            self.assertEqual(closing.accepted, 2)
            self.assertEqual(good.count(), 4)
        finally:
            usher.stop()
            closing.stop()
            good.stop()

    def test_a_retried_status_goes_back_to_the_only_backend(self):
        busy = Recorder("busy", "status:503")
        port, usher = start_usher([busy.port], pool_extra="    retries: { attempts: 3, backoff: 1ms }\n")
        try:
            self.assertEqual(raw_get(port)[0], 503)
            self.assertEqual(busy.count(), 3)
        finally:
            usher.stop()
            busy.stop()


class LoneBackendUnreachable(unittest.TestCase):
    """Its accept queue is full and never drained: connects time out. Nothing was sent, so the
    only backend is tried again."""

    def test_a_failed_connect_is_retried_on_the_only_backend(self):
        listener, fillers, full_port = full_listener()
        port, usher = start_usher([full_port], pool_extra=(
            "    timeouts: { connect: 300ms, response: 10s }\n"
            "    retries: { attempts: 2, backoff: 1ms }\n"))
        try:
            status, _, _, took = raw_get(port)
            print(f"\ntwo connect timeouts: {status} after {took * 1000:.0f} ms")
            self.assertEqual(status, 504)
            self.assertGreaterEqual(took, 0.59)
            self.assertLess(took, 1.5)
        finally:
            usher.stop()
            for s in fillers:
                s.close()
            listener.close()


if __name__ == "__main__":
    unittest.main()
