#!/usr/bin/env python3
"""A slow-read crowd against one normal downloader: CROWD connections each ask for a large
response and then read it one byte a second (slowhttptest's "slow read"), while one client
downloads the same response again and again. Prints the downloader's median time without the
crowd, with it, and their ratio, for usher on each io backend and, where installed, HAProxy and
nginx on the same machine in the same run.

    python3 bench/slow_read.py                       # 200 readers, 1 MiB, 20 downloads each way
    CROWD=200 BYTES=1048576 DOWNLOADS=20 RCVBUF=0 python3 bench/slow_read.py usher-io_uring usher-epoll haproxy nginx

RCVBUF > 0 gives each slow reader that SO_RCVBUF (a small window, as attack tools set). WORKERS
(default 1) workers or threads for every proxy, so a proxy's turns are what the crowd competes
for; WORKERS=0 leaves each proxy its default (one per core).
"""
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
BACKEND = os.path.join(HERE, "..", "tests", "integration", "backend.py")
USHER = os.environ.get("USHER_BIN", os.path.join(HERE, "..", "build", "src", "app", "usher"))
CROWD = int(os.environ.get("CROWD", "200"))
BYTES = int(os.environ.get("BYTES", str(1 << 20)))
DOWNLOADS = int(os.environ.get("DOWNLOADS", "20"))
RCVBUF = int(os.environ.get("RCVBUF", "0"))
WORKERS = int(os.environ.get("WORKERS", "1"))  # 0: each proxy's default (one per core)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def request(path):
    return f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode()


def download(port):
    """Seconds to fetch BYTES through the proxy on a fresh connection."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(request(f"/big?bytes={BYTES}"))
        received, head_end, total = b"", -1, None
        while total is None or len(received) - head_end < total:
            data = s.recv(1 << 20)
            if not data:
                raise RuntimeError("closed early")
            received += data
            if total is None and b"\r\n\r\n" in received:
                head_end = received.index(b"\r\n\r\n") + 4
                for line in received[:head_end].decode().split("\r\n"):
                    if line.lower().startswith("content-length:"):
                        total = int(line.split(":")[1])
    return time.monotonic() - started


def median_download(port):
    return statistics.median(download(port) for _ in range(DOWNLOADS))


class Crowd:
    """CROWD connections reading one byte a second each, on one thread."""

    def __init__(self, port):
        self.sockets = []
        for _ in range(CROWD):
            s = socket.socket()
            if RCVBUF:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
            s.connect(("127.0.0.1", port))
            s.sendall(request(f"/big?bytes={BYTES}"))
            s.setblocking(False)
            self.sockets.append(s)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run)
        self.thread.start()

    def run(self):
        while not self.stop.wait(1.0):
            for s in self.sockets:
                try:
                    s.recv(1)
                except OSError:
                    pass

    def close(self):
        self.stop.set()
        self.thread.join()
        for s in self.sockets:
            s.close()


def start_proxy(name, port, backend_port, workdir):
    if name.startswith("usher-"):
        env = dict(os.environ, USHER_IO_BACKEND=name.split("-", 1)[1])
        args = [USHER, "proxy", "--listen", f"127.0.0.1:{port}", "--to",
                f"127.0.0.1:{backend_port}"] + (["--workers", str(WORKERS)] if WORKERS else [])
        return subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if name == "haproxy":
        config = os.path.join(workdir, "haproxy.cfg")
        with open(config, "w") as f:
            f.write(f"""global
  {f"nbthread {WORKERS}" if WORKERS else ""}
defaults
  mode http
  timeout connect 5s
  timeout client 120s
  timeout server 120s
frontend web
  bind 127.0.0.1:{port}
  default_backend app
backend app
  http-reuse always
  server a 127.0.0.1:{backend_port}
""")
        return subprocess.Popen(["haproxy", "-db", "-f", config], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
    if name == "nginx":
        config = os.path.join(workdir, "nginx.conf")
        with open(config, "w") as f:
            f.write(f"""daemon off;
worker_processes {WORKERS or "auto"};
pid {workdir}/nginx.pid;
error_log {workdir}/nginx-error.log;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {workdir};
  proxy_temp_path {workdir};
  upstream app {{ server 127.0.0.1:{backend_port}; keepalive 64; }}
  server {{
    listen 127.0.0.1:{port};
    location / {{ proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection ""; }}
  }}
}}
""")
        return subprocess.Popen(["nginx", "-c", config, "-p", workdir],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    raise SystemExit(f"unknown target {name}")


def measure(name, backend_port, workdir):
    port = free_port()
    proxy = start_proxy(name, port, backend_port, workdir)
    try:
        wait_port(port)
        alone = median_download(port)
        crowd = Crowd(port)
        try:
            time.sleep(2)  # the crowd's responses have started and filled what they can
            crowded = median_download(port)
        finally:
            crowd.close()
        print(f"{name:15} alone {alone * 1e3:7.1f} ms  with {CROWD} slow readers "
              f"{crowded * 1e3:7.1f} ms  ratio {crowded / alone:5.2f}", flush=True)
    finally:
        proxy.send_signal(signal.SIGKILL)
        proxy.wait()


def main():
    targets = sys.argv[1:] or ["usher-io_uring", "usher-epoll"] + [
        t for t in ("haproxy", "nginx") if shutil.which(t)]
    backend_port = free_port()
    backend = subprocess.Popen([sys.executable, BACKEND, str(backend_port), "b"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(backend_port)
        print(f"# {CROWD} slow readers (1 byte/s, SO_RCVBUF {RCVBUF or 'default'}), "
              f"{BYTES} byte responses, median of {DOWNLOADS} downloads", flush=True)
        with tempfile.TemporaryDirectory() as workdir:
            for name in targets:
                measure(name, backend_port, workdir)
    finally:
        backend.send_signal(signal.SIGKILL)
        backend.wait()


if __name__ == "__main__":
    main()
