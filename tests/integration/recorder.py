"""A backend that runs inside the test process and records when each request head arrived, for
tests that measure timing at the backend side (retry spacing, probe spacing) or need a backend
that misbehaves in one precise way (hangs, pushes bytes on an upgraded connection).

Each Recorder listens on its own loopback port; `behaviour` decides what a request gets:
  "ok"       200 with the recorder's name as the body (keep-alive)
  "status:N" that status with the name as the body
  "hang"     reads the request and never answers (holds the connection until stop())
  "push:MS"  answers an Upgrade with 101, then sends one byte every MS ms and never reads
  "hints"    an interim 103 (Early Hints) with a Link field, then 200
"""
import socket
import socketserver
import threading
import time


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256


class Recorder:
    def __init__(self, name, behaviour="ok"):
        self.name = name
        self.behaviour = behaviour
        self.lock = threading.Lock()
        self.arrivals = []  # (time.monotonic(), method, target, {lowercased name: value})
        self.stopping = threading.Event()
        recorder = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self):
                try:
                    recorder._serve(self.request)
                except OSError:
                    pass

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()

    def _serve(self, sock):
        buf = b""
        while not self.stopping.is_set():
            while b"\r\n\r\n" not in buf:
                data = sock.recv(65536)
                if not data:
                    return
                buf += data
            head, buf = buf.split(b"\r\n\r\n", 1)
            lines = head.decode("latin-1").split("\r\n")
            method, target, _ = lines[0].split(" ", 2)
            headers = {}
            for line in lines[1:]:
                name, value = line.split(":", 1)
                headers[name.strip().lower()] = value.strip()
            with self.lock:
                self.arrivals.append((time.monotonic(), method, target, headers))
            body = self.name.encode()
            if self.behaviour == "hang":
                self.stopping.wait(60)
                return
            if self.behaviour.startswith("push:"):
                period = int(self.behaviour[5:]) / 1000
                sock.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                             b"Connection: Upgrade\r\n\r\n")
                for _ in range(int(60 / period)):
                    if self.stopping.wait(period):
                        return
                    sock.sendall(b".")
                return
            if self.behaviour == "hints":
                sock.sendall(b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n")
                time.sleep(0.05)
            status = int(self.behaviour[7:]) if self.behaviour.startswith("status:") else 200
            sock.sendall(b"HTTP/1.1 %d X\r\nContent-Length: %d\r\n\r\n" % (status, len(body)) + body)

    def times(self, path=None):
        with self.lock:
            return [t for t, _, target, _ in self.arrivals if path is None or target.startswith(path)]

    def count(self, path=None):
        return len(self.times(path))

    def stop(self):
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()


def full_listener():
    """A listening socket whose accept queue is full and never drained: a connect to it gets no
    SYN-ACK (Linux drops the SYN), so it hangs until the connector's own timeout. Returns
    (listening socket, the sockets that fill its queue, port); close them all when done."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(16):
        s = socket.socket()
        s.settimeout(0.3)
        try:
            s.connect(("127.0.0.1", port))
        except (socket.timeout, OSError):
            s.close()
            return listener, fillers, port
        fillers.append(s)
    listener.close()
    for s in fillers:
        s.close()
    raise RuntimeError("the accept queue never filled up")
