"""Binary upgrade: `usher run -c F --upgrade` takes the running usher's listening sockets over
upgrade_socket, serves, and the old process drains: under keep-alive load no request fails and no
connection attempt is refused; a WebSocket opened before keeps working while the old one drains."""
import http.client
import os
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest

from harness import USHER, Process, free_port, start_backend, wait_port, write_config
from test_timeouts import recv_exact, ws_frame, ws_handshake


def config_text(port, admin_port, backends, socket_path, drain="4s"):
    listed = "".join(f"      - 127.0.0.1:{p}\n" for p in backends)
    return (f"workers: 2\nupgrade_socket: {socket_path}\n"
            f"admin: {{ listen: 127.0.0.1:{admin_port} }}\n"
            f"timeouts: {{ drain: {drain} }}\n"
            f"listeners:\n  - name: web\n    listen: 127.0.0.1:{port}\n    pool: web\n"
            f"pools:\n  - name: web\n    backends:\n{listed}")


class KeepAliveLoad:
    """Threads, each with one keep-alive connection that reopens only when usher says close."""

    def __init__(self, port, threads=8):
        self.port = port
        self.ok = 0
        self.failures = []
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run) for _ in range(threads)]

    def run(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        deadline = time.monotonic() + 120  # bounded whatever happens
        while not self.stop.is_set() and time.monotonic() < deadline:
            try:
                conn.request("GET", "/")
                response = conn.getresponse()
                response.read()
                with self.lock:
                    if response.status == 200:
                        self.ok += 1
                    else:
                        self.failures.append(f"status {response.status}")
            except (OSError, http.client.HTTPException) as e:
                with self.lock:
                    self.failures.append(repr(e))
                conn.close()
        conn.close()

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join()

    def wait_for(self, count, timeout=60):
        deadline = time.monotonic() + timeout
        while self.ok < count and time.monotonic() < deadline:
            time.sleep(0.05)


class NewConnections:
    """A thread opening a fresh connection for each request: any refused or reset attempt counts."""

    def __init__(self, port):
        self.port = port
        self.attempts = 0
        self.failures = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run)

    def run(self):
        deadline = time.monotonic() + 120
        while not self.stop.is_set() and time.monotonic() < deadline:
            self.attempts += 1
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=10) as s:
                    s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                    data = b""
                    while True:
                        chunk = s.recv(65536)
                        if not chunk:
                            break
                        data += chunk
                    if not data.startswith(b"HTTP/1.1 200"):
                        self.failures.append(data[:40])
            except OSError as e:
                self.failures.append(repr(e))

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()


class Upgrade(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp()
        self.socket_path = os.path.join(self.dir, "upgrade.sock")
        self.backends = [start_backend(name) for name in ("a", "b")]
        self.port, self.admin_port = free_port(), free_port()
        self.config = write_config(config_text(self.port, self.admin_port,
                                               [p for p, _ in self.backends], self.socket_path))
        self.old = Process([USHER, "run", "-c", self.config], port=self.port)
        self.new = None

    def tearDown(self):
        for process in (self.old, self.new):
            if process:
                process.stop()
        for _, backend in self.backends:
            backend.stop()

    def upgrade(self):
        self.new = Process([USHER, "run", "-c", self.config, "--upgrade"])

    def wait_old_exit(self, timeout=15):
        try:
            return self.old.wait(timeout)
        except subprocess.TimeoutExpired:
            self.fail(f"the old usher did not exit: {self.old.output()}")

    def test_under_keep_alive_load_no_request_fails_and_no_connection_is_refused(self):
        with KeepAliveLoad(self.port) as load, NewConnections(self.port) as fresh:
            load.wait_for(4000)
            self.upgrade()
            self.assertEqual(self.wait_old_exit(), 0, self.old.output())
            load.wait_for(20000, timeout=90)
        self.assertGreaterEqual(load.ok, 20000)
        self.assertEqual(load.failures, [], self.new.output())
        self.assertGreater(fresh.attempts, 20)
        self.assertEqual(fresh.failures, [], self.new.output())
        self.assertIn("handed over", self.old.output())
        self.assertIn(f"pid {self.old.pid} stops accepting and drains", self.new.output())
        # The new process serves the admin API on the socket it took over.
        conn = http.client.HTTPConnection("127.0.0.1", self.admin_port, timeout=5)
        conn.request("GET", "/readyz")
        self.assertEqual(conn.getresponse().status, 200)
        conn.close()

    def test_a_websocket_opened_before_keeps_working_while_the_old_process_drains(self):
        ws, head = ws_handshake(self.port)
        self.assertIn(b" 101 ", head.split(b"\r\n")[0])
        ws.sendall(ws_frame(b"before"))
        self.assertEqual(recv_exact(ws, 8), b"\x81\x06before")
        self.upgrade()
        deadline = time.monotonic() + 10
        while "handed over" not in self.old.output() and time.monotonic() < deadline:
            time.sleep(0.05)
        wait_port(self.port)
        time.sleep(0.5)
        # The old process drains: the tunnel it holds still carries messages both ways.
        self.assertIsNone(self.old.proc.poll())
        ws.sendall(ws_frame(b"during"))
        self.assertEqual(recv_exact(ws, 8), b"\x81\x06during")
        # New connections reach the new process meanwhile.
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        conn.request("GET", "/")
        self.assertEqual(conn.getresponse().status, 200)
        conn.close()
        # The drain's end (4 s) ends it with a Close frame, 1001 Going Away; the old process
        # exits 0.
        ws.settimeout(8)
        self.assertEqual(recv_exact(ws, 4), b"\x88\x02\x03\xe9")
        self.assertEqual(ws.recv(16), b"")
        self.assertEqual(self.wait_old_exit(), 0, self.old.output())
        ws.close()

    def test_a_second_process_without_upgrade_is_refused_and_changes_nothing(self):
        other = subprocess.run([USHER, "run", "-c", self.config], capture_output=True, text=True,
                               timeout=10)
        self.assertEqual(other.returncode, 1)
        self.assertIn("another usher listens there; start this one with --upgrade", other.stderr + other.stdout)
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        conn.request("GET", "/")
        self.assertEqual(conn.getresponse().status, 200)
        conn.close()
        # The running process can still be upgraded: the path is still its own.
        self.upgrade()
        self.assertEqual(self.wait_old_exit(), 0, self.old.output())

    def test_the_upgraded_process_can_be_upgraded_again(self):
        self.upgrade()
        self.assertEqual(self.wait_old_exit(), 0, self.old.output())
        self.old.stop()
        self.old, self.new = self.new, None
        deadline = time.monotonic() + 10
        while "takes over through" not in self.old.output() and time.monotonic() < deadline:
            time.sleep(0.05)
        self.upgrade()
        self.assertEqual(self.wait_old_exit(), 0, self.old.output())
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        conn.request("GET", "/")
        self.assertEqual(conn.getresponse().status, 200)
        conn.close()


class Refusals(unittest.TestCase):
    def test_upgrade_with_nothing_running_says_so(self):
        path = os.path.join(tempfile.mkdtemp(), "none.sock")
        config = write_config(config_text(free_port(), free_port(), [free_port()], path))
        result = subprocess.run([USHER, "run", "-c", config, "--upgrade"], capture_output=True,
                                text=True, timeout=10)
        self.assertEqual(result.returncode, 1)
        self.assertIn("no running usher to take over from at " + path, result.stderr)

    def test_upgrade_without_upgrade_socket_says_so(self):
        config = write_config(f"listeners:\n  - listen: 127.0.0.1:{free_port()}\n    pool: web\n"
                              f"pools:\n  - name: web\n    backends: [127.0.0.1:{free_port()}]\n")
        result = subprocess.run([USHER, "run", "-c", config, "--upgrade"], capture_output=True,
                                text=True, timeout=10)
        self.assertEqual(result.returncode, 1)
        self.assertIn("--upgrade needs 'upgrade_socket'", result.stderr)

    def test_check_refuses_a_relative_path(self):
        config = write_config(f"upgrade_socket: run/usher.sock\n"
                              f"listeners:\n  - listen: 127.0.0.1:{free_port()}\n    pool: web\n"
                              f"pools:\n  - name: web\n    backends: [127.0.0.1:{free_port()}]\n")
        result = subprocess.run([USHER, "check", "-c", config], capture_output=True, text=True,
                                timeout=10)
        self.assertEqual(result.returncode, 1)
        self.assertIn(":1:17: upgrade_socket must be an absolute path", result.stderr)


if __name__ == "__main__":
    unittest.main()
