"""A raw HTTP/2 client for conformance tests: frames are written byte for byte (so that malformed
ones can be sent) and read back with hyperframe, header blocks made and read with hpack. Every
expectation waits at most TIMEOUT seconds and says, when it fails, what was sent and what came
back, frame by frame. start_server() and H2Case give each test module an usher with one h2c
listener in front of an HTTP/1 backend.

The outcomes follow RFC 9113 section 5.4: a connection error is a GOAWAY with its code (the
connection closing without one is accepted too, as the RFC lets a peer skip the GOAWAY); a stream
error is a RST_STREAM on that stream with its code, or the same error raised to the connection."""
import socket
import struct
import time
import unittest

import hpack
from hyperframe.frame import Frame

from harness import USHER, Process, free_port, start_backend, write_config

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
TIMEOUT = 2.0  # per expectation
# Kept small so that the concurrency case opens only a few streams more than allowed.
MAX_STREAMS = 8

# Frame types (RFC 9113 section 6).
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, \
    CONTINUATION = range(10)
TYPE_NAMES = ["DATA", "HEADERS", "PRIORITY", "RST_STREAM", "SETTINGS", "PUSH_PROMISE", "PING", "GOAWAY",
              "WINDOW_UPDATE", "CONTINUATION"]

# Flags.
END_STREAM = ACK = 0x1
END_HEADERS = 0x4
PADDED = 0x8
PRIORITY_FLAG = 0x20

# Error codes (RFC 9113 section 7).
NO_ERROR, PROTOCOL_ERROR, INTERNAL_ERROR, FLOW_CONTROL_ERROR, SETTINGS_TIMEOUT, STREAM_CLOSED, \
    FRAME_SIZE_ERROR, REFUSED_STREAM, CANCEL, COMPRESSION_ERROR, CONNECT_ERROR, ENHANCE_YOUR_CALM, \
    INADEQUATE_SECURITY, HTTP_1_1_REQUIRED = range(14)
ERROR_NAMES = ["NO_ERROR", "PROTOCOL_ERROR", "INTERNAL_ERROR", "FLOW_CONTROL_ERROR", "SETTINGS_TIMEOUT",
               "STREAM_CLOSED", "FRAME_SIZE_ERROR", "REFUSED_STREAM", "CANCEL", "COMPRESSION_ERROR",
               "CONNECT_ERROR", "ENHANCE_YOUR_CALM", "INADEQUATE_SECURITY", "HTTP_1_1_REQUIRED"]

# Settings.
HEADER_TABLE_SIZE, ENABLE_PUSH, MAX_CONCURRENT_STREAMS, INITIAL_WINDOW_SIZE, MAX_FRAME_SIZE, \
    MAX_HEADER_LIST_SIZE = range(1, 7)


def error_name(code):
    return ERROR_NAMES[code] if code < len(ERROR_NAMES) else hex(code)


def frame(kind, flags, stream, payload=b""):
    """One frame as bytes, whatever its fields say: nothing is checked."""
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


def settings(*pairs, flags=0, stream=0):
    return frame(SETTINGS, flags, stream, b"".join(struct.pack(">HI", k, v) for k, v in pairs))


def ping(data=b"\0" * 8, flags=0):
    return frame(PING, flags, 0, data)


def rst_stream(stream, code):
    return frame(RST_STREAM, 0, stream, struct.pack(">I", code))


def window_update(stream, increment):
    return frame(WINDOW_UPDATE, 0, stream, struct.pack(">I", increment))


def priority(stream, depends_on=0, weight=255, exclusive=False):
    return frame(PRIORITY, 0, stream, struct.pack(">IB", depends_on | (exclusive << 31), weight))


def goaway(last_stream, code, debug=b""):
    return frame(GOAWAY, 0, 0, struct.pack(">II", last_stream, code) + debug)


def data(stream, payload, end_stream=True):
    return frame(DATA, END_STREAM if end_stream else 0, stream, payload)


def dummy_fields(count, length=4000):
    """h2spec's filler fields: x-dummyN with `length` x's each."""
    return [(f"x-dummy{i}", "x" * length) for i in range(count)]


class Received:
    """A frame read from usher: its header fields and, parsed by hyperframe, its body."""

    def __init__(self, header, payload):
        self.parsed, _ = Frame.parse_frame_header(memoryview(header))
        self.length = len(payload)
        self.kind, self.flags = header[3], header[4]
        self.stream = struct.unpack(">I", header[5:9])[0] & 0x7FFFFFFF
        self.payload = payload
        self.malformed = None
        try:
            self.parsed.parse_body(memoryview(payload))
        except Exception as e:  # a frame hyperframe will not read still shows in the transcript
            self.malformed = e

    @property
    def code(self):
        return None if self.malformed else self.parsed.error_code

    def __repr__(self):
        name = TYPE_NAMES[self.kind] if self.kind < len(TYPE_NAMES) else f"type {self.kind:#x}"
        detail = ""
        if self.malformed:
            detail = f" unreadable: {self.malformed}"
        elif self.kind in (GOAWAY, RST_STREAM):
            detail = f" {error_name(self.code)}"
            if self.kind == GOAWAY:
                detail += f" last_stream={self.parsed.last_stream_id} debug={bytes(self.parsed.additional_data)!r}"
        elif self.kind == PING:
            detail = f" {self.payload!r}"
        elif self.kind == WINDOW_UPDATE:
            detail = f" +{self.parsed.window_increment}"
        return f"{name}(stream={self.stream}, flags={self.flags:#04x}, length={self.length}{detail})"


CLOSED = "connection closed"
TIMED_OUT = "nothing more within the timeout"


class Client:
    """One HTTP/2 connection to usher over plain TCP (h2c with prior knowledge)."""

    def __init__(self, port, authority=None):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        self.authority = authority or f"127.0.0.1:{port}"
        self.encoder, self.decoder = hpack.Encoder(), hpack.Decoder()
        self.buffer = self.pending_block = b""
        self.closed = False
        self.sent, self.seen = [], []
        self.server_settings = {}

    def close(self):
        self.sock.close()

    def request_fields(self, method="GET", path="/"):
        """h2spec's common request: :method, :scheme, :path, :authority."""
        return [(":method", method), (":scheme", "http"), (":path", path), (":authority", self.authority)]

    def block(self, fields):
        return self.encoder.encode(fields)

    def send(self, *chunks):
        raw = b"".join(chunks)
        self.sent.append(describe(raw))
        try:
            self.sock.sendall(raw)
        except OSError as e:  # usher may have closed already; what it sent is still to be read
            self.sent.append(f"(send failed: {e})")

    def headers(self, stream, fields, end_stream=True, end_headers=True, depends_on=None, weight=255):
        """A HEADERS frame whose block encodes `fields` (or is `fields` itself, if bytes)."""
        fragment = fields if isinstance(fields, bytes) else self.block(fields)
        flags = (END_STREAM if end_stream else 0) | (END_HEADERS if end_headers else 0)
        if depends_on is not None:
            flags |= PRIORITY_FLAG
            fragment = struct.pack(">IB", depends_on, weight) + fragment
        self.send(frame(HEADERS, flags, stream, fragment))

    def continuation(self, stream, fields, end_headers=True):
        fragment = fields if isinstance(fields, bytes) else self.block(fields)
        self.send(frame(CONTINUATION, END_HEADERS if end_headers else 0, stream, fragment))

    def handshake(self, *pairs):
        """The client preface and a SETTINGS frame (h2spec's: INITIAL_WINDOW_SIZE 65535, then
        `pairs`), until usher's SETTINGS came (and was acknowledged) and ours was acknowledged."""
        self.send(PREFACE, settings((INITIAL_WINDOW_SIZE, 65535), *pairs))
        theirs = ours = False
        deadline = time.monotonic() + TIMEOUT
        while not (theirs and ours):
            f = self.next_frame(deadline)
            if not isinstance(f, Received):
                raise AssertionError(f"no HTTP/2 handshake: {f}\n{self.transcript()}")
            if f.kind == SETTINGS and f.flags & ACK:
                ours = True
            elif f.kind == SETTINGS:
                theirs = True
                self.server_settings.update(f.parsed.settings)
                self.send(settings(flags=ACK))
        return self

    def next_frame(self, deadline):
        """The next frame, or CLOSED, or TIMED_OUT."""
        while True:
            if len(self.buffer) >= 9:
                length = struct.unpack(">I", b"\0" + self.buffer[:3])[0]
                if len(self.buffer) >= 9 + length:
                    header, payload = self.buffer[:9], self.buffer[9:9 + length]
                    self.buffer = self.buffer[9 + length:]
                    f = Received(header, payload)
                    self.seen.append(repr(f))
                    self.track_headers(f)
                    return f
            if self.closed:
                return CLOSED
            left = deadline - time.monotonic()
            if left <= 0:
                self.seen.append(TIMED_OUT)
                return TIMED_OUT
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                continue
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                self.closed = True
                self.seen.append(CLOSED + (f" ({len(self.buffer)} bytes left unparsed)" if self.buffer else ""))
            self.buffer += chunk

    def track_headers(self, f):
        """Response header blocks are decoded as they come: the HPACK table is the connection's."""
        if f.kind in (HEADERS, CONTINUATION):
            self.pending_block += bytes(f.parsed.data)
            if f.flags & END_HEADERS:
                f.fields = self.decoder.decode(self.pending_block)
                self.pending_block = b""

    def transcript(self):
        return "sent:\n  " + "\n  ".join(self.sent) + "\nreceived:\n  " + "\n  ".join(self.seen or ["nothing"])

    def fail(self, expected):
        raise AssertionError(f"expected {expected}\n{self.transcript()}")

    def wait_for(self, expected, match, close_ok=False):
        """Reads until `match(frame)` is true (returns that frame) or the connection closes (fine
        only if close_ok) or the time is up."""
        deadline = time.monotonic() + TIMEOUT
        while True:
            f = self.next_frame(deadline)
            if f is CLOSED and close_ok:
                return f
            if not isinstance(f, Received):
                self.fail(expected)
            verdict = match(f)
            if verdict:
                return f
            if verdict is False:
                self.fail(expected)

    def expect_connection_error(self, *codes):
        """A GOAWAY with one of `codes`, or the connection closed without one."""
        names = "/".join(map(error_name, codes))

        def match(f):
            return f.code in codes if f.kind == GOAWAY else None
        return self.wait_for(f"GOAWAY({names}) or the connection closed", match, close_ok=True)

    def expect_stream_error(self, stream, *codes):
        """RST_STREAM on `stream` with one of `codes`, or the same error made a connection error."""
        names = "/".join(map(error_name, codes))

        def match(f):
            if f.kind == GOAWAY or (f.kind == RST_STREAM and f.stream == stream):
                return f.code in codes
            return None
        return self.wait_for(f"RST_STREAM(stream {stream}, {names}) or GOAWAY({names}) or the connection "
                             "closed", match, close_ok=True)

    def expect_goaway(self, code):
        """A GOAWAY with exactly `code`: closing without one does not do."""
        return self.wait_for(f"GOAWAY({error_name(code)})",
                             lambda f: f.code == code if f.kind == GOAWAY else None)

    def expect_rst(self, stream, code):
        """RST_STREAM on `stream` with exactly `code`."""
        return self.wait_for(f"RST_STREAM(stream {stream}, {error_name(code)})",
                             lambda f: f.code == code if f.kind == RST_STREAM and f.stream == stream else None)

    def expect_frame(self, kind, stream=None):
        """The next frame of `kind`; if `stream` is given it must be on that stream."""
        what = TYPE_NAMES[kind] + ("" if stream is None else f" on stream {stream}")
        return self.wait_for(what, lambda f: (stream is None or f.stream == stream) if f.kind == kind else None)

    def expect_ping_ack(self, payload, close_ok=False):
        what = f"PING(ACK, {payload!r})" + (" or the connection closed" if close_ok else "")
        return self.wait_for(what, lambda f: (f.flags & ACK and f.payload == payload) if f.kind == PING else None,
                             close_ok=close_ok)

    def expect_settings_ack(self):
        return self.wait_for("SETTINGS(ACK)", lambda f: bool(f.flags & ACK) if f.kind == SETTINGS else None)

    def expect_close(self):
        """The connection closed (frames before the close, a GOAWAY say, are fine)."""
        return self.wait_for("the connection closed", lambda f: None, close_ok=True)

    def expect_response(self, stream):
        """The whole response on `stream`: (its fields, its body)."""
        fields, body = None, b""
        deadline = time.monotonic() + TIMEOUT
        while True:
            f = self.next_frame(deadline)
            if not isinstance(f, Received) or f.kind in (GOAWAY, RST_STREAM):
                self.fail(f"a whole response on stream {stream}")
            if f.stream != stream:
                continue
            if f.kind == HEADERS and fields is None:
                fields = dict(getattr(f, "fields", []))
            elif f.kind == DATA:
                body += bytes(f.parsed.data)
            if f.kind in (HEADERS, DATA) and f.flags & END_STREAM:
                return fields, body


def describe(raw):
    """Frames (or a preface, or other bytes) as the transcript shows them."""
    parts = []
    if raw.startswith(PREFACE):
        parts.append("preface")
        raw = raw[len(PREFACE):]
    while len(raw) >= 9:
        length = struct.unpack(">I", b"\0" + raw[:3])[0]
        kind, flags, stream = raw[3], raw[4], struct.unpack(">I", raw[5:9])[0]
        name = TYPE_NAMES[kind] if kind < len(TYPE_NAMES) else f"type {kind:#x}"
        payload = raw[9:9 + length]
        shown = payload.hex() if len(payload) <= 16 else payload[:16].hex() + "..."
        parts.append(f"{name}(stream={stream & 0x7FFFFFFF}{'+R' if stream >> 31 else ''}, flags={flags:#04x}, "
                     f"length={length}, payload={shown})")
        if len(payload) < length:
            parts[-1] += f" [{len(payload)} bytes of it here]"
        raw = raw[9 + length:]
    if raw:
        parts.append(f"bytes {raw!r}")
    return ", ".join(parts)


_server = {}


def start_server():
    """usher with one h2c listener in front of one HTTP/1 backend, for a test module."""
    backend_port, _server["backend"] = start_backend("a")
    _server["port"] = free_port()
    config = write_config(f"""workers: 1
listeners:
  - name: h2c
    listen: 127.0.0.1:{_server["port"]}
    pool: web
    http2: {{ max_concurrent_streams: {MAX_STREAMS} }}
pools:
  - name: web
    backends:
      - 127.0.0.1:{backend_port}
""")
    _server["usher"] = Process([USHER, "run", "-c", config], port=_server["port"])


def server_port():
    return _server["port"]


def stop_server():
    _server.pop("usher").stop()
    _server.pop("backend").stop()


class H2Case(unittest.TestCase):
    def connect(self, *pairs, handshake=True):
        """A connection to usher, its preface and SETTINGS exchanged unless handshake is False."""
        c = Client(server_port())
        self.addCleanup(c.close)
        return c.handshake(*pairs) if handshake else c

    def post_open(self, c, stream=1, extra=()):
        """A POST whose body is still to come: the stream stays open."""
        c.headers(stream, c.request_fields("POST") + list(extra), end_stream=False)
