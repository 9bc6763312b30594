"""Shared pieces of the integration tests: real usher and backend processes on loopback,
started and stopped by PID, and small raw-socket HTTP helpers.

USHER_TEST_TLS=1 runs a suite with TLS on: usher's client-facing listeners speak HTTPS (one
certificate made per run with `openssl req`) and every client connection made through these
helpers (connect, exchange, http_connection) speaks TLS, verifying that certificate. Suites
that write their own listener configuration add listener_tls() to it. The proxy, routing and
health suites run so in CI (tests/CMakeLists.txt: integration.io_uring.tls_*)."""
import atexit
import http.client
import json
import os
import select
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
USHER = os.environ.get("USHER_BIN", os.path.join(HERE, "..", "..", "build", "src", "app", "usher"))
TLS = os.environ.get("USHER_TEST_TLS") == "1"
SCHEME = "https" if TLS else "http"  # what usher tells backends (X-Forwarded-Proto) and redirects

_certificate = None
_client_context = None


def tls_certificate():
    """(cert, key) of a self-signed P-256 certificate for 127.0.0.1 and localhost, made once per
    run in a folder removed at exit."""
    global _certificate
    if _certificate is None:
        folder = tempfile.mkdtemp(prefix="usher-test-tls-")
        atexit.register(shutil.rmtree, folder, True)
        cert, key = os.path.join(folder, "listener.pem"), os.path.join(folder, "listener.key")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                        "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=localhost",
                        "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                       check=True, capture_output=True)
        _certificate = (cert, key)
    return _certificate


def listener_tls(indent="    "):
    """A listener's `tls:` line under USHER_TEST_TLS=1, else nothing."""
    if not TLS:
        return ""
    cert, key = tls_certificate()
    return f"{indent}tls: {{ certificates: [{{ cert: {cert}, key: {key} }}] }}\n"


def client_context():
    """A client context that trusts the run's certificate (and only it)."""
    global _client_context
    if _client_context is None:
        _client_context = ssl.create_default_context(cafile=tls_certificate()[0])
    return _client_context


def connect(port, timeout=5.0, source=None, rcvbuf=None):
    """A client connection to usher on loopback: TLS, handshake done, under USHER_TEST_TLS=1."""
    s = socket.socket()
    try:
        if rcvbuf:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        if source:
            s.bind((source, 0))
        s.settimeout(timeout)
        s.connect(("127.0.0.1", port))
        return client_context().wrap_socket(s, server_hostname="127.0.0.1") if TLS else s
    except BaseException:
        s.close()
        raise


def http_connection(port, timeout=5.0, source=None):
    """An http.client connection to usher: HTTPS under USHER_TEST_TLS=1."""
    source_address = (source, 0) if source else None
    if TLS:
        return http.client.HTTPSConnection("127.0.0.1", port, timeout=timeout,
                                           source_address=source_address, context=client_context())
    return http.client.HTTPConnection("127.0.0.1", port, timeout=timeout, source_address=source_address)


def shutdown_write(s):
    """Ends the client's sending side (a TCP FIN). An SSLSocket's own shutdown() would drop its TLS
    state, and what usher sends afterwards could no longer be read."""
    socket.socket.shutdown(s, socket.SHUT_WR)


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
                status = self.proc.poll()
                state = "still running" if status is None else f"exited with {status}"
                self.stop()
                raise RuntimeError(f"{args[0]} did not listen on {port} ({state}): {self.output()}")

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
        f"listeners:\n  - name: web\n    listen: 127.0.0.1:{port}\n    pool: web\n{listener_tls()}"
        f"pools:\n  - name: web\n{pool_extra}    backends:\n{backends}")
    return port, Process([USHER, "run", "-c", config], port=port)


def rss_kib(pid, field="VmRSS:"):
    """Resident KiB; field="RssAnon:" counts only anonymous memory (heap, buffers, stacks), not
    the pages of the binary and its libraries."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1])
    return 0


def backend_stats(port):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    c.request("GET", "/stats")
    stats = json.loads(c.getresponse().read())
    c.close()
    return stats


def exchange(port, raw, timeout=5.0, half_close=False):
    """Sends raw bytes on a fresh connection and returns everything read until the peer closes
    (or timeout)."""
    with connect(port, timeout) as s:
        s.sendall(raw)
        if half_close:
            shutdown_write(s)
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
        except (ConnectionResetError, ssl.SSLError):
            break
        if not data:
            break
        out += data
    return out


def send_while_reading(s, raw, quiet, timeout):
    """Sends raw on s while reading what comes back, reading nothing for the first `quiet`
    seconds, until the peer closes (or timeout); returns what was read. One thread does both: an
    SSL socket must not be used by two at once."""
    s.setblocking(False)
    started = time.monotonic()
    view, sent, out = memoryview(raw), 0, bytearray()
    while time.monotonic() < started + timeout:
        reading = time.monotonic() >= started + quiet
        pending = reading and TLS and s.pending() > 0
        readable, writable = [], []
        if not pending:
            readable, writable, _ = select.select([s] if reading else [], [s] if sent < len(raw) else [],
                                                  [], 0.05)
        if writable:
            try:
                sent += s.send(view[sent:sent + 65536])
            except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                pass
        if pending or readable:
            try:
                data = s.recv(65536)
            except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                continue
            except (ConnectionResetError, ssl.SSLError):
                break
            if not data:
                break
            out += data
    return bytes(out)


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
