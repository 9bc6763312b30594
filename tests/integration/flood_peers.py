"""The peers of test_h2_floods.py: a raw h2c client (frames from hyperframe, header blocks
written by hand), an usher with h2c listeners, and a backend that counts what reaches it.

Run as `flood_peers.py PORT` this file is the backend: HTTP/1.1 keep-alive on 127.0.0.1:PORT,
counting requests by path, answering "ok"; /stats answers the counts as JSON; /slow?ms=N answers
after N ms, or counts "/slow cancelled" if usher closes the connection first."""
import asyncio
import collections
import gc
import json
import os
import select
import socket
import sys
import time

from hpack import Decoder
from hyperframe.frame import Frame, GoAwayFrame, HeadersFrame, PingFrame, RstStreamFrame, SettingsFrame

from harness import USHER, Process, free_port, wait_port, write_config

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
NO_ERROR, PROTOCOL_ERROR, CANCEL, REFUSED_STREAM, ENHANCE_YOUR_CALM = 0x0, 0x1, 0x8, 0x7, 0xB

# ---------------------------------------------------------------------------------------------
# The backend


async def _read_body(reader, headers):
    if headers.get("transfer-encoding", "").lower() == "chunked":
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                while await reader.readuntil(b"\r\n") != b"\r\n":
                    pass
                return
            await reader.readexactly(size + 2)
    elif "content-length" in headers:
        await reader.readexactly(int(headers["content-length"]))


async def _serve(reader, writer, counts):
    try:
        while True:
            lines = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
            path, _, query = lines[0].split(" ")[1].partition("?")
            headers = dict((k.strip().lower(), v.strip()) for k, v in (x.split(":", 1) for x in lines[1:] if x))
            counts[path] += 1
            await _read_body(reader, headers)
            body = json.dumps(counts).encode() if path == "/stats" else b"ok"
            if path == "/slow":
                counts["/slow in flight"] += 1
                # usher sends nothing more on this connection before the answer: a read ends
                # only when it closes the connection.
                ended = asyncio.ensure_future(reader.read(1))
                done, _ = await asyncio.wait([ended], timeout=int(query.split("=")[1]) / 1000)
                counts["/slow in flight"] -= 1
                if done:
                    counts["/slow cancelled"] += 1
                    return
                ended.cancel()
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            await writer.drain()
            if headers.get("connection", "").lower() == "close":
                return
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


def run_backend(port):
    # The load's tail latency should be usher's, not a collector pause here: nothing this
    # process keeps makes reference cycles worth collecting within a test run.
    gc.disable()
    counts = collections.Counter()

    async def main():
        server = await asyncio.start_server(lambda r, w: _serve(r, w, counts), "127.0.0.1", port, backlog=1024)
        await server.serve_forever()
    asyncio.run(main())


def backend_counts(port):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"GET /stats HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return collections.Counter(json.loads(data.split(b"\r\n\r\n", 1)[1]))


# ---------------------------------------------------------------------------------------------
# Frames. Request header blocks use only HPACK's static table and literals without indexing, so
# every block decodes alone and the same bytes can open any number of streams.


def hpack_int(value, prefix_bits, first=0):
    top = (1 << prefix_bits) - 1
    if value < top:
        return bytes([first | value])
    out, value = [first | top], value - top
    while value >= 128:
        out.append((value & 127) | 128)
        value >>= 7
    return bytes(out + [value])


def literal(name, value):
    return b"\x00" + hpack_int(len(name), 7) + name + hpack_int(len(value), 7) + value


def request_block(path="/", method="GET", extra=b""):
    """:method, :scheme http, :path and :authority localhost, then `extra` fields."""
    path = path.encode()
    return ({"GET": b"\x82", "POST": b"\x83"}[method] + b"\x86" + b"\x04" + hpack_int(len(path), 7) + path
            + b"\x01\x09localhost" + extra)


REQUEST_LIST_BYTES = 42 + 43 + 38 + 51  # request_block("/")'s fields as RFC 9113 6.5.2 counts them


def headers(stream, block, end_stream=True, end_headers=True):
    flags = (["END_STREAM"] if end_stream else []) + (["END_HEADERS"] if end_headers else [])
    return HeadersFrame(stream, data=block, flags=flags).serialize()


def ping(n):
    return PingFrame(0, opaque_data=n.to_bytes(8, "big")).serialize()


class Conn:
    """A raw h2c client connection: the preface and an empty SETTINGS go first; what comes back
    is parsed into frames (response headers decoded) as it is read, and usher's SETTINGS are
    acknowledged unless `acknowledge` is false."""

    def __init__(self, port, acknowledge=True):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.sock.setblocking(False)
        self.started = time.monotonic()
        self.frames, self.buf, self.decoder = [], b"", Decoder()
        self.status = {}  # stream -> :status
        self.goaway = self.goaway_after = None
        self.closed = False
        self.acknowledge = acknowledge
        self.out, self.sent = bytearray(PREFACE + SettingsFrame(0).serialize()), 0

    def close(self):
        self.sock.close()

    def _take(self, data):
        self.buf += data
        while len(self.buf) >= 9:
            frame, length = Frame.parse_frame_header(memoryview(self.buf[:9]))
            if len(self.buf) < 9 + length:
                return
            frame.parse_body(memoryview(self.buf[9:9 + length]))
            self.buf = self.buf[9 + length:]
            self.frames.append(frame)
            if isinstance(frame, HeadersFrame):
                self.status.setdefault(frame.stream_id, dict(self.decoder.decode(frame.data)).get(":status"))
            elif isinstance(frame, GoAwayFrame) and self.goaway is None:
                self.goaway, self.goaway_after = frame, time.monotonic() - self.started
            elif isinstance(frame, SettingsFrame) and "ACK" not in frame.flags and self.acknowledge:
                self.out += SettingsFrame(0, flags=["ACK"]).serialize()

    def pump(self, data=b"", until=None, timeout=5.0):
        """Sends `data` (after anything queued) while reading, until `until(self)` holds (without
        it: until all is sent), the connection ends or `timeout` passes."""
        self.out += data
        deadline = time.monotonic() + timeout
        while not self.closed and time.monotonic() < deadline:
            if until(self) if until else not self.out:
                break
            readable, writable, _ = select.select([self.sock], [self.sock] if self.out else [], [], 0.02)
            if writable:
                try:
                    n = self.sock.send(self.out[:1 << 18])
                    del self.out[:n]
                    self.sent += n
                except BlockingIOError:
                    pass
                except OSError:
                    self.out.clear()  # usher is gone: what it sent may still be read
            if readable:
                try:
                    chunk = self.sock.recv(1 << 20)
                except BlockingIOError:
                    continue
                except OSError:
                    chunk = b""
                self.closed = not chunk
                self._take(chunk)
        return self

    def ended(self, timeout=3.0):
        """Reads until usher closes the connection (or `timeout`)."""
        return self.pump(until=lambda c: False, timeout=timeout)

    def count(self, kind, flag=None):
        return sum(1 for f in self.frames if isinstance(f, kind) and (flag is None or flag in f.flags))

    def resets(self):
        return {f.stream_id: f.error_code for f in self.frames if isinstance(f, RstStreamFrame)}

    def settled(self, timeout=5.0):
        """Until usher has applied the client's ACK of its SETTINGS: a PING sent after the ACK
        comes back after it was processed."""
        self.pump(until=lambda c: c.count(SettingsFrame) >= 1, timeout=timeout)
        self.pump(ping(0xACC), until=lambda c: c.count(PingFrame, "ACK") >= 1, timeout=timeout)
        return self

    def goaway_code(self):
        return None if self.goaway is None else self.goaway.error_code


# ---------------------------------------------------------------------------------------------
# usher


class Usher:
    """usher with an admin listener and the given h2c listeners ({name: `http2:` value or
    None}), all in front of one backend, stopped by PID."""

    def __init__(self, backend_port, listeners, workers=1):
        self.admin, self.ports = free_port(), {name: free_port() for name in listeners}
        text = f"workers: {workers}\nadmin: {{ listen: 127.0.0.1:{self.admin} }}\nlisteners:\n"
        for name, http2 in listeners.items():
            text += f"  - name: {name}\n    listen: 127.0.0.1:{self.ports[name]}\n    pool: web\n"
            text += f"    http2: {http2}\n" if http2 else ""
        text += f"pools:\n  - name: web\n    backends: [127.0.0.1:{backend_port}]\n"
        self.config = write_config(text)
        self.process = Process([USHER, "run", "-c", self.config], port=self.admin)
        for port in self.ports.values():
            wait_port(port)

    def stop(self):
        self.process.stop()
        os.unlink(self.config)

    def errors(self, listener):
        """usher_http2_protocol_errors_total of the listener, by reason."""
        with socket.create_connection(("127.0.0.1", self.admin), timeout=5) as s:
            s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        prefix = f'usher_http2_protocol_errors_total{{listener="{listener}",reason="'
        out = collections.Counter()
        for line in data.decode().splitlines():
            if line.startswith(prefix):
                reason, value = line[len(prefix):].split('"} ')
                out[reason] = int(float(value))
        return out

    def errors_after(self, listener, before, want, timeout=3.0):
        """The counts added since `before` once they include `want` (or after `timeout`)."""
        deadline = time.monotonic() + timeout
        while True:
            added = self.errors(listener) - before
            if all(added[k] >= v for k, v in want.items()) or time.monotonic() > deadline:
                return added
            time.sleep(0.05)


def start_backend():
    port = free_port()
    return port, Process([sys.executable, os.path.abspath(__file__), str(port)], port=port)


if __name__ == "__main__":
    run_backend(int(sys.argv[1]))
