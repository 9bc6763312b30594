"""Peers for the HTTP/2 suite, in the test process: an HTTP/2 client made with python h2 (h2c with
prior knowledge, or h2 by ALPN over TLS) that keeps each stream's response, interim answers and
trailers, and HTTP/1.1 backends that misbehave in one precise way (a chunked answer with trailers;
a body left unread until the test releases it)."""
import hashlib
import re
import socket
import socketserver
import ssl
import threading
import time

import h2.config
import h2.connection
import h2.events

from harness import tls_certificate

TIMEOUT = 10.0


class Response:
    """One stream's answer as the client saw it: header fields (":status" among them), interim
    statuses, body, how many DATA frames carried it, trailers, and the RST_STREAM code if reset."""

    def __init__(self):
        self.headers, self.trailers, self.interim = [], [], []
        self.body, self.data_frames, self.ended, self.reset = b"", 0, False, None

    @property
    def status(self):
        return int(self.header(":status"))

    def header(self, name):
        values = [v for n, v in self.headers if n == name]
        return values[0] if len(values) == 1 else values or None


class H2:
    """One HTTP/2 client connection made with python h2: h2c with prior knowledge, or h2
    negotiated by ALPN over TLS."""

    def __init__(self, port, tls=False):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        if tls:
            context = ssl.create_default_context(cafile=tls_certificate()[0])
            context.set_alpn_protocols(["h2"])
            self.sock = context.wrap_socket(self.sock, server_hostname="localhost")
            if self.sock.selected_alpn_protocol() != "h2":
                raise ConnectionError(f"ALPN chose {self.sock.selected_alpn_protocol()!r}, not h2")
        self.scheme, self.authority = ("https" if tls else "http"), f"127.0.0.1:{port}"
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True,
                                                                         header_encoding="utf-8"))
        self.conn.initiate_connection()
        self.flush()
        self.streams = {}

    def close(self):
        self.sock.close()

    def flush(self):
        if data := self.conn.data_to_send():
            self.sock.sendall(data)

    def pump(self, timeout):
        """Reads what comes within `timeout` and handles it."""
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(1 << 20)
        except socket.timeout:
            return
        if not data:
            raise ConnectionError("usher closed the connection")
        for event in self.conn.receive_data(data):
            r = self.streams.get(getattr(event, "stream_id", None))
            if isinstance(event, h2.events.ResponseReceived):
                r.headers = event.headers
            elif isinstance(event, h2.events.InformationalResponseReceived):
                r.interim.append(dict(event.headers)[":status"])
            elif isinstance(event, h2.events.DataReceived):
                r.body += event.data
                r.data_frames += 1
                self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, h2.events.TrailersReceived):
                r.trailers = event.headers
            elif isinstance(event, h2.events.StreamEnded):
                r.ended = True
            elif isinstance(event, h2.events.StreamReset):
                r.reset, r.ended = event.error_code, True
            elif isinstance(event, h2.events.ConnectionTerminated):
                raise ConnectionError(f"GOAWAY {event.error_code!r}")
        self.flush()

    def start(self, method, path, fields=(), end=True, authority=None):
        sid = self.conn.get_next_available_stream_id()
        self.streams[sid] = Response()
        head = [(":method", method), (":scheme", self.scheme), (":path", path),
                (":authority", authority or self.authority)]
        self.conn.send_headers(sid, head + list(fields), end_stream=end)
        self.flush()
        return sid

    def send(self, sid, body, end=True, stall=None):
        """Sends `body` as the windows allow; with `stall`, gives up once usher opened no window
        for that many seconds. Returns the bytes sent."""
        view, sent, progress = memoryview(body), 0, time.monotonic()
        while sent < len(body):
            room = min(self.conn.local_flow_control_window(sid), self.conn.max_outbound_frame_size,
                       len(body) - sent)
            if room == 0:
                if time.monotonic() - progress > (stall or TIMEOUT):
                    if stall:
                        return sent
                    raise AssertionError(f"no window for {TIMEOUT} s after {sent} bytes")
                self.pump(0.05)
                continue
            self.conn.send_data(sid, bytes(view[sent:sent + room]), end_stream=end and sent + room == len(body))
            self.flush()
            sent, progress = sent + room, time.monotonic()
        if end and not body:
            self.conn.end_stream(sid)
            self.flush()
        return sent

    def response(self, sid, timeout=TIMEOUT):
        deadline = time.monotonic() + timeout
        while not self.streams[sid].ended:
            if time.monotonic() > deadline:
                raise AssertionError(f"stream {sid} unanswered after {timeout} s")
            self.pump(0.2)
        return self.streams[sid]

    def request(self, method, path, fields=(), body=None, authority=None):
        sid = self.start(method, path, fields, end=body is None, authority=authority)
        if body is not None:
            self.send(sid, body)
        return self.response(sid)


class Reader:
    """A request body as a backend reads it: its length and digest so far."""

    def __init__(self, sock):
        self.sock, self.buffer, self.length, self.digest = sock, b"", 0, hashlib.sha256()

    def fill(self):
        if not (data := self.sock.recv(1 << 20)):
            raise ConnectionError("the body ended early")
        self.buffer += data

    def line(self):
        while b"\r\n" not in self.buffer:
            self.fill()
        line, self.buffer = self.buffer.split(b"\r\n", 1)
        return line

    def exact(self, n):
        while n:
            if not self.buffer:
                self.fill()
            piece, self.buffer = self.buffer[:n], self.buffer[n:]
            self.digest.update(piece)
            self.length, n = self.length + len(piece), n - len(piece)


class InlineBackend:
    """An HTTP/1.1 backend in this process. `trailers`: a chunked answer with a trailer section.
    `held`: reads a request's head, then nothing until release() (its receive buffer pinned at
    64 KiB), then the body, answering "LENGTH SHA256"."""
    RCVBUF = 64 * 1024

    def __init__(self, kind):
        self.kind, self.released, self.head_read = kind, threading.Event(), threading.Event()
        backend = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self):
                try:
                    backend.serve(self.request)
                except OSError:
                    pass

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler, bind_and_activate=False)
        self.server.daemon_threads = True
        self.server.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.RCVBUF)
        self.server.server_bind()
        self.server.server_activate()
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def serve(self, sock):
        head = b""
        while not head.endswith(b"\r\n\r\n"):  # byte by byte: no body byte is read with the head
            if not (byte := sock.recv(1)):
                return
            head += byte
        if self.kind == "trailers":
            sock.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Checksum\r\n\r\n"
                         b"5\r\nhello\r\n6\r\n world\r\n0\r\nX-Checksum: 5eb63bbb\r\nX-Parts: 2\r\n\r\n")
            return
        self.head_read.set()
        self.released.wait(30)
        body = Reader(sock)
        if length := re.search(rb"(?i)\r\ncontent-length: *(\d+)", head):
            body.exact(int(length.group(1)))
        else:  # chunked, trailers ignored
            while size := int(body.line().split(b";")[0], 16):
                body.exact(size)
                body.line()
            while body.line():
                pass
        answer = b"%d %s" % (body.length, body.digest.hexdigest().encode())
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(answer)
                     + answer)

    def stop(self):
        self.released.set()
        self.server.shutdown()
        self.server.server_close()
