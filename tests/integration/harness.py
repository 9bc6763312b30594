"""Shared pieces of the integration tests: real usher and backend processes on loopback,
started and stopped by PID, and small raw-socket HTTP helpers."""
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
USHER = os.environ.get("USHER_BIN", os.path.join(HERE, "..", "..", "build", "src", "app", "usher"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"port {port} did not open")


class Process:
    """A child process stopped by its own PID, never by name."""

    def __init__(self, args, port=None, **kwargs):
        self.args = args
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT, **kwargs)
        if port is not None:
            try:
                wait_port(port)
            except RuntimeError:
                self.stop()
                raise RuntimeError(f"{args[0]} did not listen on {port}: {self.output()}")

    @property
    def pid(self):
        return self.proc.pid

    def output(self):
        if self.log.closed:
            return ""
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def signal(self, sig):
        self.proc.send_signal(sig)

    def wait(self, timeout):
        return self.proc.wait(timeout=timeout)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.log.close()


def start_backend(name, *extra, port=None, health=None, fail=None):
    port = port or free_port()
    env = dict(os.environ)
    if health:
        env["BACKEND_HEALTH"] = str(health)
    if fail:
        env["BACKEND_FAIL"] = str(fail)
    return port, Process([sys.executable, os.path.join(HERE, "backend.py"), str(port), name, *map(str, extra)],
                         port=port, env=env)


def write_config(text):
    f = tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False)
    f.write(text)
    f.close()
    return f.name


def start_usher(backend_ports, workers=1, extra="", pool_extra=""):
    port = free_port()
    backends = "".join(f"      - 127.0.0.1:{p}\n" for p in backend_ports)
    config = write_config(
        f"workers: {workers}\n{extra}"
        f"listeners:\n  - name: web\n    listen: 127.0.0.1:{port}\n    pool: web\n"
        f"pools:\n  - name: web\n{pool_extra}    backends:\n{backends}")
    return port, Process([USHER, "run", "-c", config], port=port)


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def backend_stats(port):
    import http.client
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    c.request("GET", "/stats")
    stats = json.loads(c.getresponse().read())
    c.close()
    return stats


def exchange(port, raw, timeout=5.0, half_close=False):
    """Sends raw bytes on a fresh connection and returns everything read until the peer closes
    (or timeout)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(raw)
        if half_close:
            s.shutdown(socket.SHUT_WR)
        return read_until_close(s, timeout)


def read_until_close(s, timeout):
    s.settimeout(timeout)
    out = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            data = s.recv(65536)
        except socket.timeout:
            break
        except ConnectionResetError:
            break
        if not data:
            break
        out += data
    return out


def status_of(response):
    if not response.startswith(b"HTTP/1.1 "):
        return None
    return int(response[9:12])


class ProxyTestCase(unittest.TestCase):
    """Three named backends (a, b, c) and one usher in front of them, per test class."""
    workers = 1
    extra = ""
    pool_extra = ""
    backend_names = ("a", "b", "c")

    @classmethod
    def setUpClass(cls):
        cls.backends = [start_backend(n) for n in cls.backend_names]
        cls.backend_ports = [p for p, _ in cls.backends]
        cls.port, cls.usher = start_usher(cls.backend_ports, cls.workers, cls.extra, cls.pool_extra)

    @classmethod
    def tearDownClass(cls):
        cls.usher.stop()
        for _, b in cls.backends:
            b.stop()
