#!/usr/bin/env python3
"""A test backend speaking HTTP/1.1 keep-alive on loopback, with endpoints that let the
integration tests see exactly what reached it.

usage: backend.py PORT NAME [WORK_MS [serial]]   (on 127.0.0.1, or the address in $BACKEND_HOST)
  GET  /                      -> body NAME, with status 200 or the one in $BACKEND_FAIL
  GET  /health                -> 200, or the status in $BACKEND_HEALTH (an application that is up
                                 but broken, which a TCP check cannot see)
  GET  /work                  -> waits WORK_MS, then NAME; with "serial", one /work at a time
                                 (a server of limited concurrency, where requests queue)
  GET  /stats                 -> {"requests": N, "connections": N, "other_requests": N,
                                 "in_flight": N, "max_in_flight": N, "ws_closes": [...]}
                                 (requests counts every request, /stats included;
                                 other_requests those other than /stats; in_flight those read
                                 and not yet answered; max_in_flight the most ever at once;
                                 ws_closes the WebSocket Close frames received, each
                                 {"masked": bool, "code": N or null})
  GET  /echo                  -> the request head exactly as received, as the body
  GET  /big?bytes=N           -> N bytes of a fixed pattern (Content-Length)
  GET  /chunked?bytes=N       -> the same pattern, chunked
  POST /upload                -> "LENGTH SHA256" of the request body (Content-Length or chunked);
                                 with ?reset=NAME the backend of that NAME reads the body, then
                                 resets the connection without answering (others answer as usual)
  GET  /sleep?ms=N            -> waits, then NAME
  GET  /status?code=N         -> that status
  GET  /ambiguous             -> a response with both Content-Length and Transfer-Encoding
  GET  /cut                   -> promises 1000 bytes, sends 10, closes
  ANY  /reset                 -> reads the request, then resets the connection without answering
  GET  /ws                    -> WebSocket echo (RFC 6455 handshake, text and binary frames)
"""
import base64
import contextlib
import hashlib
import json
import os
import socket
import socketserver
import struct
import sys
import threading
import time
from urllib.parse import parse_qs, urlsplit

PATTERN = bytes(range(256)) * 4096  # 1 MiB


def pattern_chunks(total):
    sent = 0
    while sent < total:
        piece = PATTERN[: min(len(PATTERN), total - sent)]
        sent += len(piece)
        yield piece


class Stats:
    lock = threading.Lock()
    requests = 0
    connections = 0
    other_requests = 0
    in_flight = 0
    max_in_flight = 0
    ws_closes = []


class Answering:
    """A request's socket: the request stops counting as in flight once its answer starts (or
    the connection is closed), before the peer can see it and send the next one."""

    def __init__(self, sock):
        self._sock = sock
        self._counted = True

    def answered(self):
        if self._counted:
            self._counted = False
            with Stats.lock:
                Stats.in_flight -= 1

    def sendall(self, data):
        self.answered()
        return self._sock.sendall(data)

    def close(self):
        self.answered()
        return self._sock.close()

    def __getattr__(self, name):
        return getattr(self._sock, name)


class Connection:
    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def fill(self):
        data = self.sock.recv(1 << 20)
        if not data:
            raise EOFError
        self.buf += data

    def read_until(self, marker):
        while marker not in self.buf:
            self.fill()
        idx = self.buf.index(marker) + len(marker)
        out, self.buf = self.buf[:idx], self.buf[idx:]
        return out

    def read_exact(self, n, sink):
        while n > 0:
            if not self.buf:
                self.fill()
            piece = self.buf[:n]
            self.buf = self.buf[len(piece):]
            n -= len(piece)
            sink(piece)

    def read_body(self, headers, sink):
        if headers.get("transfer-encoding", "").lower().endswith("chunked"):
            while True:
                line = self.read_until(b"\r\n")
                size = int(line.split(b";")[0], 16)
                if size == 0:
                    while self.read_until(b"\r\n") != b"\r\n":
                        pass
                    return
                self.read_exact(size, sink)
                self.read_until(b"\r\n")
        elif "content-length" in headers:
            self.read_exact(int(headers["content-length"]), sink)


def respond(sock, status, body=b"", head_only=False):
    if status in (204, 304) or status < 200:
        sock.sendall(b"HTTP/1.1 %d X\r\n\r\n" % status)
        return
    head = b"HTTP/1.1 %d X\r\nContent-Length: %d\r\n\r\n" % (status, len(body))
    sock.sendall(head if head_only else head + body)


def websocket_echo(conn, key):
    accept = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest())
    conn.sock.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                      b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n")
    while True:
        while len(conn.buf) < 2:
            conn.fill()
        b0, b1 = conn.buf[0], conn.buf[1]
        length, pos = b1 & 0x7F, 2
        if length == 126:
            while len(conn.buf) < 4:
                conn.fill()
            length, pos = int.from_bytes(conn.buf[2:4], "big"), 4
        elif length == 127:
            while len(conn.buf) < 10:
                conn.fill()
            length, pos = int.from_bytes(conn.buf[2:10], "big"), 10
        masked = b1 & 0x80
        need = pos + (4 if masked else 0) + length
        while len(conn.buf) < need:
            conn.fill()
        mask = conn.buf[pos:pos + 4] if masked else b"\0\0\0\0"
        start = pos + (4 if masked else 0)
        payload = bytes(c ^ mask[i % 4] for i, c in enumerate(conn.buf[start:need]))
        conn.buf = conn.buf[need:]
        opcode = b0 & 0x0F
        if opcode == 8:
            with Stats.lock:
                Stats.ws_closes.append({"masked": bool(masked),
                                        "code": int.from_bytes(payload[:2], "big") if len(payload) >= 2 else None})
            conn.sock.sendall(b"\x88\x00")
            return
        header = bytes([0x80 | opcode])
        if len(payload) < 126:
            header += bytes([len(payload)])
        else:
            header += bytes([126]) + len(payload).to_bytes(2, "big")
        conn.sock.sendall(header + payload)


class Handler(socketserver.BaseRequestHandler):
    def handle(self):
        with Stats.lock:
            Stats.connections += 1
        conn = Connection(self.request)
        try:
            while self.serve_one(conn):
                pass
        except (EOFError, ConnectionError, OSError):
            pass

    def serve_one(self, conn):
        raw = conn.read_until(b"\r\n\r\n")
        with Stats.lock:
            Stats.requests += 1
        lines = raw.decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        headers = {}
        for line in lines[1:]:
            if line:
                name, value = line.split(":", 1)
                headers[name.strip().lower()] = value.strip()
        url = urlsplit(target)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        path = url.path
        if path == "/stats":
            return self.serve_parsed(conn, raw, method, headers, query, path)
        with Stats.lock:
            Stats.other_requests += 1
            Stats.in_flight += 1
            Stats.max_in_flight = max(Stats.max_in_flight, Stats.in_flight)
        sock = conn.sock
        conn.sock = Answering(sock)
        try:
            return self.serve_parsed(conn, raw, method, headers, query, path)
        finally:
            conn.sock.answered()
            conn.sock = sock

    def serve_parsed(self, conn, raw, method, headers, query, path):
        name = self.server.name.encode()
        sock = conn.sock
        if path == "/upload":
            digest, size = hashlib.sha256(), [0]

            def sink(piece):
                digest.update(piece)
                size[0] += len(piece)
            conn.read_body(headers, sink)
            if query.get("reset") == self.server.name:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                sock.close()
                return False
            respond(sock, 200, b"%d %s" % (size[0], digest.hexdigest().encode()))
        else:
            conn.read_body(headers, lambda piece: None)
            if path == "/stats":
                with Stats.lock:
                    body = json.dumps({"requests": Stats.requests, "connections": Stats.connections,
                                       "other_requests": Stats.other_requests, "in_flight": Stats.in_flight,
                                       "max_in_flight": Stats.max_in_flight, "ws_closes": Stats.ws_closes})
                respond(sock, 200, body.encode())
            elif path.endswith("/echo"):
                respond(sock, 200, raw)
            elif path == "/big":
                total = int(query.get("bytes", "0"))
                sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % total)
                for piece in pattern_chunks(0 if method == "HEAD" else total):
                    sock.sendall(piece)
            elif path == "/chunked":
                total = int(query.get("bytes", "0"))
                sock.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
                for piece in pattern_chunks(total):
                    sock.sendall(b"%x\r\n" % len(piece) + piece + b"\r\n")
                sock.sendall(b"0\r\n\r\n")
            elif path == "/health":
                respond(sock, int(os.environ.get("BACKEND_HEALTH", "200")), b"health")
            elif path == "/work":
                with self.server.work_lock:
                    time.sleep(self.server.work_ms / 1000)
                respond(sock, 200, name)
            elif path == "/sleep":
                time.sleep(int(query.get("ms", "0")) / 1000)
                respond(sock, 200, name)
            elif path == "/set-cookie":
                cookie = b"%s=%s; Path=/" % (query.get("name", "c").encode(), query.get("value", "v").encode())
                sock.sendall(b"HTTP/1.1 200 OK\r\nSet-Cookie: " + cookie + b"\r\nContent-Length: %d\r\n\r\n" % len(name)
                             + name)
            elif path == "/status":
                respond(sock, int(query.get("code", "200")), name)
            elif path == "/ambiguous":
                sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
                             b"5\r\nhello\r\n0\r\n\r\n")
            elif path == "/cut":
                sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n0123456789")
                return False
            elif path == "/reset":
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                sock.close()
                return False
            elif path == "/ws":
                websocket_echo(conn, headers.get("sec-websocket-key", ""))
                return False
            else:
                respond(sock, int(os.environ.get("BACKEND_FAIL", "200")), name)
        return headers.get("connection", "").lower() != "close"


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024


def main():
    port, name = int(sys.argv[1]), sys.argv[2]
    server = Server((os.environ.get("BACKEND_HOST", "127.0.0.1"), port), Handler)
    server.name = name
    server.work_ms = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    serial = len(sys.argv) > 4 and sys.argv[4] == "serial"
    server.work_lock = threading.Lock() if serial else contextlib.nullcontext()
    server.serve_forever(poll_interval=0.1)


if __name__ == "__main__":
    main()
