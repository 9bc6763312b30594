"""HTTP/2 toward backends (`protocol: h2`, h2c with prior knowledge), against python h2 servers in
this process that count what they see. A backend advertising SETTINGS_MAX_CONCURRENT_STREAMS=1
never has more than one stream open on a connection, while every concurrent client request is
answered: on exactly one connection with `h2_connections: 1`, on at most two with
`h2_connections: 2`. A stream the backend refuses unprocessed (RST_STREAM REFUSED_STREAM, or
beyond a GOAWAY's last stream id) is retried on the other backend, bodiless POSTs included, and
counted in usher_pool_retries_total and the access log's `retries`. Round-robin balances per
request while each backend keeps one connection. An HTTP/1.1 chunked request body reaches the
backend byte-exact as DATA frames, and a backend's trailers reach an HTTP/1.1 client as a chunked
body with a trailer section and an h2c client as a trailing HEADERS frame.

Every usher runs `workers: 1`: the connection counts do not depend on which worker took a client."""
import hashlib
import http.client
import json
import os
import re
import shutil
import socket
import tempfile
import threading
import time
import unittest
from concurrent.futures import ThreadPoolExecutor

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings

from h2peers import H2
from harness import USHER, Process, connect, free_port, http_connection, read_until_close, wait_port, write_config

DELAY = 0.3  # the slow backend's answer time


class H2Backend:
    """An h2c backend in this process. Answers each request "NAME LENGTH SHA256" of its body after
    `delay` s; `refuse`: RST_STREAM REFUSED_STREAM on every request's HEADERS instead; `goaway`:
    GOAWAY NO_ERROR with last stream id 0 when a connection's first request arrives; `trailers`:
    no content-length, the answer in two DATA frames, then trailers. Keeps the connections that
    sent the client preface, the most streams open at once on each, the streams opened past
    `max_streams`, the requests it answered (fields and body) and those it refused."""

    def __init__(self, name, max_streams=None, delay=0.0, refuse=False, goaway=False, trailers=False):
        self.name, self.max_streams, self.delay = name, max_streams, delay
        self.refuse, self.goaway, self.trailers = refuse, goaway, trailers
        self.lock = threading.Lock()
        self.peaks, self.over_limit, self.answered, self.refused, self.errors = [], [], [], [], []
        self.sockets = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self.accept, daemon=True).start()

    @property
    def connections(self):
        return len(self.peaks)

    def seen(self):
        return (f"{self.connections} connections, most streams open at once on each {self.peaks}, "
                f"streams past the limit {self.over_limit}")

    def accept(self):
        while True:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            with self.lock:
                self.sockets.append(sock)
            threading.Thread(target=BackendConnection(self, sock).run, daemon=True).start()

    def stop(self):
        self.listener.shutdown(socket.SHUT_RDWR)  # wakes accept()
        self.listener.close()
        with self.lock:
            for sock in self.sockets:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


class BackendConnection:
    """One connection to an H2Backend. python h2's state is under a lock: answers leave from timers."""

    def __init__(self, backend, sock):
        self.backend, self.sock, self.lock = backend, sock, threading.Lock()
        self.streams, self.index, self.gone, self.acked = {}, None, False, False  # id -> (fields, body, frames)
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False,
                                                                         header_encoding="utf-8"))
        limit = {h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: backend.max_streams} if backend.max_streams else {}
        self.conn.local_settings = h2.settings.Settings(client=False, initial_values=limit)
        self.conn.initiate_connection()  # the SETTINGS frame carries the limit
        # python h2 would end the whole connection at the first stream over the limit; this
        # backend counts that stream and refuses it (as nghttp2 does before its SETTINGS are
        # acknowledged), so a test sees both the breach and what the client did about it.
        self.conn.local_settings = h2.settings.Settings(client=False)

    def run(self):
        with self.sock:
            self.flush()
            while True:
                try:
                    data = self.sock.recv(1 << 16)
                except OSError:
                    return
                if not data:
                    return
                with self.lock:
                    if self.index is None:
                        if not data.startswith(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"):
                            return
                        with self.backend.lock:
                            self.index = len(self.backend.peaks)
                            self.backend.peaks.append(0)
                    try:
                        events = self.conn.receive_data(data)
                    except h2.exceptions.ProtocolError as e:
                        if self.gone:
                            continue  # the client's frames crossing our GOAWAY
                        self.backend.errors.append(repr(e))
                        self.flush()
                        return
                    for event in events:
                        self.on_event(event)
                    self.flush()

    def on_event(self, event):
        b, sid = self.backend, getattr(event, "stream_id", None)
        if isinstance(event, h2.events.RequestReceived) and not self.gone:
            fields = dict(event.headers)
            if b.goaway or b.refuse:
                with b.lock:
                    b.refused.append((fields[":method"], fields[":path"]))
                if b.goaway:
                    self.conn.close_connection(error_code=h2.errors.ErrorCodes.NO_ERROR, last_stream_id=0)
                    self.gone = True
                else:
                    self.conn.reset_stream(sid, h2.errors.ErrorCodes.REFUSED_STREAM)
                return
            self.streams[sid] = (event.headers, bytearray(), [0])
            with b.lock:
                b.peaks[self.index] = max(b.peaks[self.index], len(self.streams))
                if b.max_streams and len(self.streams) > b.max_streams:
                    when = "after" if self.acked else "before"
                    b.over_limit.append(f"stream {sid} on connection {self.index}, {len(self.streams)} open, "
                                        f"{when} the client acknowledged the limit")
                    self.conn.reset_stream(sid, h2.errors.ErrorCodes.REFUSED_STREAM)
                    del self.streams[sid]
        elif isinstance(event, h2.events.DataReceived):
            self.conn.acknowledge_received_data(event.flow_controlled_length, sid)
            if sid in self.streams:
                self.streams[sid][1].extend(event.data)
                self.streams[sid][2][0] += 1
        elif isinstance(event, h2.events.StreamEnded) and sid in self.streams:
            if b.delay:
                timer = threading.Timer(b.delay, self.answer_later, (sid,))
                timer.daemon = True
                timer.start()
            else:
                self.answer(sid)
        elif isinstance(event, h2.events.SettingsAcknowledged):
            self.acked = True
        elif isinstance(event, h2.events.StreamReset):
            self.streams.pop(sid, None)

    def answer_later(self, sid):
        with self.lock:
            self.answer(sid)
            self.flush()

    def answer(self, sid):
        b = self.backend
        if self.gone or sid not in self.streams:
            return
        fields, body, frames = self.streams.pop(sid)
        digest = hashlib.sha256(body).hexdigest()
        text = f"{b.name} {len(body)} {digest}".encode()
        with b.lock:
            b.answered.append((fields, bytes(body), frames[0]))
        if b.trailers:
            self.conn.send_headers(sid, [(":status", "200"), ("content-type", "text/plain")])
            self.conn.send_data(sid, text[:5])
            self.conn.send_data(sid, text[5:])
            self.conn.send_headers(sid, [("x-checksum", digest[:8]), ("x-parts", "2")], end_stream=True)
        else:
            self.conn.send_headers(sid, [(":status", "200"), ("content-length", str(len(text)))])
            self.conn.send_data(sid, text, end_stream=True)

    def flush(self):
        if data := self.conn.data_to_send():
            try:
                self.sock.sendall(data)
            except OSError:
                pass


def get(conn, path, method="GET", body=None):
    conn.request(method, path, body=body)
    response = conn.getresponse()
    return response.status, response.read()


def concurrent_gets(port, count):
    """`count` GETs at once, each on its own client connection (all connected before any is sent);
    returns their (status, body) and the seconds until the last answer."""
    barrier = threading.Barrier(count)

    def one(i):
        conn = http_connection(port, timeout=15)
        conn.connect()
        barrier.wait()
        try:
            return get(conn, f"/slow?n={i}")
        finally:
            conn.close()

    started = time.monotonic()
    with ThreadPoolExecutor(count) as pool:
        results = list(pool.map(one, range(count)))
    return results, time.monotonic() - started


def dechunk(raw):
    """An HTTP/1.1 chunked body: (payload, trailer section lines)."""
    payload = b""
    while True:
        size_line, raw = raw.split(b"\r\n", 1)
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            trailer, _ = raw.split(b"\r\n\r\n", 1) if not raw.startswith(b"\r\n") else (b"", raw)
            return payload, [line for line in trailer.split(b"\r\n") if line]
        payload, raw = payload + raw[:size], raw[size + 2:]


class H2Backends(unittest.TestCase):
    maxDiff = None  # a failure lists every stream past the limit
    def setUp(self):
        self.folder = tempfile.mkdtemp(prefix="usher-test-h2b-")
        self.addCleanup(shutil.rmtree, self.folder, True)
        self.log = os.path.join(self.folder, "access.log")

    def backend(self, name, **kwargs):
        b = H2Backend(name, **kwargs)
        self.addCleanup(b.stop)
        self.addCleanup(lambda: self.assertEqual(b.errors, [], f"{name}: usher broke the protocol"))
        return b

    def start(self, backends, pool_keys=""):
        """One usher, one worker, a listener in front of pool `web` (`protocol: h2`)."""
        self.port, self.admin = free_port(), free_port()
        listed = ", ".join(f"127.0.0.1:{b.port}" for b in backends)
        config = write_config(
            f"workers: 1\nadmin: {{ listen: 127.0.0.1:{self.admin} }}\naccess_log: {self.log}\n"
            f"listeners:\n  - name: front\n    listen: 127.0.0.1:{self.port}\n    pool: web\n"
            f"pools:\n  - name: web\n    protocol: h2\n{pool_keys}    backends: [{listed}]\n")
        self.addCleanup(os.unlink, config)
        usher = Process([USHER, "run", "-c", config], port=self.port)
        self.addCleanup(usher.stop)
        wait_port(self.admin)
        return usher

    def retries_metric(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.admin, timeout=5)
        _, text = get(conn, "/metrics")
        conn.close()
        found = re.search(rb'^usher_pool_retries_total\{[^}]*pool="web"[^}]*\} (\S+)$', text, re.M)
        self.assertIsNotNone(found, "usher_pool_retries_total{pool=\"web\"} is not in /metrics")
        return float(found.group(1))

    def log_lines(self, count):
        deadline = time.monotonic() + 5
        while True:
            lines = []
            if os.path.exists(self.log):
                with open(self.log) as f:
                    lines = [json.loads(line) for line in f if line.strip()]
            if len(lines) >= count or time.monotonic() > deadline:
                return lines
            time.sleep(0.05)

    def test_one_connection_holds_streams_to_the_backends_limit(self):
        slow = self.backend("slow", max_streams=1, delay=DELAY)
        self.start([slow], "    h2_connections: 1\n")
        results, took = concurrent_gets(self.port, 4)
        self.assertEqual([s for s, _ in results], [200] * 4, results)
        self.assertTrue(all(body.startswith(b"slow 0 ") for _, body in results), results)
        self.assertEqual(slow.over_limit, [], slow.seen())
        self.assertEqual(max(slow.peaks), 1, slow.seen())
        self.assertEqual(slow.connections, 1, slow.seen())
        self.assertGreaterEqual(took, 4 * DELAY, "the four answers did not come one after another")

    def test_connections_stop_at_h2_connections(self):
        slow = self.backend("slow", max_streams=1, delay=DELAY)
        self.start([slow], "    h2_connections: 2\n")
        results, took = concurrent_gets(self.port, 6)
        self.assertEqual([s for s, _ in results], [200] * 6, results)
        self.assertEqual(slow.over_limit, [], slow.seen())
        self.assertLessEqual(slow.connections, 2, slow.seen())
        self.assertEqual(max(slow.peaks), 1, slow.seen())
        self.assertGreaterEqual(took, 6 * DELAY / 2, "more than two streams were answered at once")

    def check_refusals_are_retried(self, refuser):
        """10 requests, bodiless POSTs and GETs, to [refuser, N] by round-robin: all answered by N,
        each refusal counted once as a retry."""
        other = self.backend("N")
        self.start([refuser, other], "    balance: round-robin\n    retries: { attempts: 2 }\n")
        before = self.retries_metric()
        conn = http_connection(self.port, timeout=10)
        methods = ["POST" if i % 4 < 2 else "GET" for i in range(10)]  # R sees both, odd or even
        for i, method in enumerate(methods):
            status, body = get(conn, f"/r?n={i}", method, b"" if method == "POST" else None)
            self.assertEqual((status, body.split(b" ")[0]), (200, b"N"), f"request {i} ({method})")
        conn.close()
        sent = [(method, f"/r?n={i}") for i, method in enumerate(methods)]
        self.assertEqual([(dict(f)[":method"], dict(f)[":path"]) for f, _, _ in other.answered], sent)
        self.assertGreaterEqual(len(refuser.refused), 2, refuser.refused)
        self.assertEqual(len(set(refuser.refused)), len(refuser.refused), "a request refused twice")
        self.assertLessEqual(set(refuser.refused), set(sent))
        self.assertEqual({m for m, _ in refuser.refused}, {"POST", "GET"}, refuser.refused)
        lines = self.log_lines(10)
        self.assertEqual([e["status"] for e in lines], [200] * 10, lines)
        self.assertEqual(sum(e["retries"] for e in lines), len(refuser.refused), lines)
        self.assertEqual(self.retries_metric() - before, len(refuser.refused))

    def test_refused_streams_are_retried_on_the_other_backend(self):
        self.check_refusals_are_retried(self.backend("R", refuse=True))

    def test_streams_beyond_a_goaway_are_retried_on_the_other_backend(self):
        refuser = self.backend("R", goaway=True)
        self.check_refusals_are_retried(refuser)
        self.assertEqual(refuser.connections, len(refuser.refused), "one GOAWAY per connection")

    def test_requests_alternate_while_each_backend_keeps_one_connection(self):
        a, b = self.backend("A"), self.backend("B")
        self.start([a, b], "    balance: round-robin\n")
        conn = http_connection(self.port, timeout=10)
        names = []
        for i in range(20):
            status, body = get(conn, f"/rr?n={i}")
            self.assertEqual(status, 200)
            names.append(body.split(b" ")[0].decode())
        conn.close()
        self.assertEqual(sorted(names), ["A"] * 10 + ["B"] * 10, names)
        self.assertTrue(all(x != y for x, y in zip(names, names[1:])), names)
        self.assertEqual((a.connections, b.connections), (1, 1))

    def test_a_chunked_request_body_arrives_byte_exact(self):
        echo = self.backend("E")
        self.start([echo])
        sizes = [1, 7, 4096, 16384, 65536, 3, 70000, 12345, 2]
        chunks = [bytes((i * 31 + j) % 256 for j in range(size)) for i, size in enumerate(sizes)]
        body = b"".join(chunks)
        conn = http_connection(self.port, timeout=10)
        conn.request("POST", "/upload", body=iter(chunks), encode_chunked=True)
        response = conn.getresponse()
        answer = response.read()
        conn.close()
        self.assertEqual((response.status, answer),
                         (200, b"E %d %s" % (len(body), hashlib.sha256(body).hexdigest().encode())))
        fields, received, frames = echo.answered[0]
        self.assertEqual(received, body)
        self.assertGreater(frames, 1, "the body is larger than one DATA frame")
        names = [n for n, _ in fields]
        self.assertEqual((dict(fields)[":method"], dict(fields)[":path"]), ("POST", "/upload"))
        self.assertNotIn("transfer-encoding", names)
        self.assertNotIn("content-length", names)

    def test_trailers_reach_http1_and_h2_clients(self):
        self.start([self.backend("T", trailers=True)])
        expected = b"T 0 " + hashlib.sha256(b"").hexdigest().encode()
        checksum = hashlib.sha256(b"").hexdigest()[:8]
        with connect(self.port, timeout=10) as s:
            s.sendall(b"GET /trailers HTTP/1.1\r\nHost: t\r\nTE: trailers\r\nConnection: close\r\n\r\n")
            raw = read_until_close(s, 10)
        head, _, rest = raw.partition(b"\r\n\r\n")
        self.assertTrue(head.startswith(b"HTTP/1.1 200"), raw)
        self.assertIn(b"transfer-encoding: chunked", head.lower(), raw)
        payload, trailer = dechunk(rest)
        self.assertEqual(payload, expected)
        self.assertEqual(sorted(line.lower() for line in trailer),
                         [b"x-checksum: " + checksum.encode(), b"x-parts: 2"], raw)
        client = H2(self.port)
        self.addCleanup(client.close)
        r = client.request("GET", "/trailers")
        self.assertEqual((r.status, r.body), (200, expected))
        self.assertEqual(sorted(r.trailers), [("x-checksum", checksum), ("x-parts", "2")])


if __name__ == "__main__":
    unittest.main()
