"""The access log: one JSON (or combined) line per request with the right fields, reopened on
SIGUSR1, and a sink that blocks (a FIFO nobody reads) never stalls the workers."""
import http.client
import json
import os
import re
import signal
import socket
import tempfile
import threading
import time
import unittest

from harness import USHER, Process, free_port, start_backend, write_config


def request(port, path, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("GET", path, headers=headers or {})
    response = conn.getresponse()
    response.read()
    conn.close()
    return response


def start(backend_port, log_path, extra=""):
    port, admin = free_port(), free_port()
    config = write_config(f"""workers: 2
admin: {{ listen: 127.0.0.1:{admin} }}
access_log: {log_path}
{extra}listeners:
  - name: web
    listen: 127.0.0.1:{port}
    routes:
      - match: {{ path: /teapot }}
        respond: {{ status: 418, body: "short and stout" }}
      - name: app
        pool: web
pools:
  - name: web
    backends: [127.0.0.1:{backend_port}]
""")
    return port, admin, Process([USHER, "run", "-c", config], port=port)


def wait_lines(path, count, timeout=5.0):
    deadline = time.monotonic() + timeout
    lines = []
    while time.monotonic() < deadline:
        if os.path.exists(path):
            with open(path) as f:
                lines = f.read().splitlines()
            if len(lines) >= count:
                return lines
        time.sleep(0.05)
    return lines


class AccessLog(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.backend = start_backend("a")
        cls.dir = tempfile.TemporaryDirectory()

    @classmethod
    def tearDownClass(cls):
        cls.backend[1].stop()
        cls.dir.cleanup()

    def test_one_json_line_per_request_with_its_fields(self):
        path = os.path.join(self.dir.name, "access.log")
        port, _, usher = start(self.backend[0], path)
        try:
            ids = []
            for i in range(40):
                response = request(port, f"/items?n={i}", {"User-Agent": "tester/1", "Referer": "x"})
                self.assertEqual(response.status, 200)
                ids.append(response.getheader("X-Request-Id"))
            self.assertEqual(request(port, "/teapot").status, 418)
            lines = wait_lines(path, 41)
            self.assertEqual(len(lines), 41)
            records = [json.loads(line) for line in lines]
            by_id = {r["request_id"]: r for r in records}
            self.assertEqual(set(ids) - set(by_id), set())
            first = by_id[ids[0]]
            self.assertEqual(first["method"], "GET")
            self.assertEqual(first["path"], "/items?n=0")
            self.assertEqual(first["status"], 200)
            self.assertEqual(first["client"], "127.0.0.1")
            self.assertEqual(first["host"], f"127.0.0.1:{port}")
            self.assertEqual(first["pool"], "web")
            self.assertEqual(first["route"], "app")
            self.assertEqual(first["backend"], f"127.0.0.1:{self.backend[0]}")
            self.assertEqual(first["retries"], 0)
            self.assertEqual(first["user_agent"], "tester/1")
            self.assertGreater(first["bytes_sent"], 0)
            self.assertGreater(first["bytes_received"], 0)
            self.assertGreaterEqual(first["duration_ms"], first["upstream_ms"])
            self.assertRegex(first["time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
            teapot = [r for r in records if r["path"] == "/teapot"][0]
            self.assertEqual((teapot["status"], teapot["pool"], teapot["upstream_ms"]), (418, "", None))

            # A request that never parsed is timed from its first bytes too.
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n")
                self.assertTrue(s.recv(100).startswith(b"HTTP/1.1 400"))
            bad = json.loads(wait_lines(path, 42)[-1])
            self.assertEqual(bad["status"], 400)
            self.assertLess(bad["duration_ms"], 5000)

            # A client that goes before its answer leaves a line with nginx's 499, not nothing.
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                s.sendall(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789")
                time.sleep(0.2)
            gone = json.loads(wait_lines(path, 43)[-1])
            self.assertEqual((gone["status"], gone["method"], gone["path"]), (499, "POST", "/upload"))
            self.assertEqual(gone["bytes_sent"], 0)

            # Rotation: move the file away, SIGUSR1, and new lines go to a new file.
            os.rename(path, path + ".1")
            usher.signal(signal.SIGUSR1)
            time.sleep(0.3)
            request(port, "/after-rotation")
            lines = wait_lines(path, 1)
            self.assertEqual(len(lines), 1)
            self.assertEqual(json.loads(lines[0])["path"], "/after-rotation")
        finally:
            usher.stop()

    def test_a_line_reaches_the_file_soon_after_the_response_on_an_idle_worker(self):
        # The worker has nothing else to do after the response; it used to wait a second for
        # events before the idle hook handed its buffer over.
        path = os.path.join(self.dir.name, "soon.log")
        port, _, usher = start(self.backend[0], path)
        try:
            for _ in range(3):
                before = len(wait_lines(path, 0))
                self.assertEqual(request(port, "/once").status, 200)
                answered = time.monotonic()
                lines = wait_lines(path, before + 1, timeout=5)
                self.assertEqual(len(lines), before + 1, lines)
                self.assertLess(time.monotonic() - answered, 0.6)
                time.sleep(1.2)  # the worker idle again, waiting with nothing to do
        finally:
            usher.stop()

    def test_combined_format(self):
        path = os.path.join(self.dir.name, "combined.log")
        port, _, usher = start(self.backend[0], path, "access_log_format: combined\n")
        try:
            request(port, "/c?x=1", {"User-Agent": 'quote"agent', "Referer": "http://r/"})
            lines = wait_lines(path, 1)
            self.assertRegex(lines[0], r'^127\.0\.0\.1 - - \[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d \+0000\] '
                                       r'"GET /c\?x=1 HTTP/1\.1" 200 \d+ "http://r/" "quote\\x22agent"$')
        finally:
            usher.stop()

    def test_a_blocked_sink_does_not_stall_requests(self):
        fifo = os.path.join(self.dir.name, "blocked.fifo")
        os.mkfifo(fifo)
        # Opened for reading and never read: the pipe fills and every write would block.
        reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        port, admin, usher = start(self.backend[0], fifo)
        try:
            failures = []

            def client():
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                for _ in range(300):
                    conn.request("GET", "/" + "p" * 200)
                    response = conn.getresponse()
                    response.read()
                    if response.status != 200:
                        failures.append(response.status)
                conn.close()

            threads = [threading.Thread(target=client) for _ in range(10)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=60)
            self.assertFalse(any(t.is_alive() for t in threads), "requests stalled")
            self.assertEqual(failures, [])
            # A line is counted just after its response went out: poll briefly for the last ones.
            deadline = time.monotonic() + 3
            while True:
                conn = http.client.HTTPConnection("127.0.0.1", admin, timeout=5)
                conn.request("GET", "/metrics")
                text = conn.getresponse().read().decode()
                conn.close()
                lines = int(re.search(r"^usher_access_log_lines_total (\d+)$", text, re.M).group(1))
                if lines == 3000 or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            dropped = int(re.search(r"^usher_access_log_dropped_lines_total (\d+)$", text, re.M).group(1))
            self.assertEqual(lines, 3000)
            self.assertGreater(dropped, 0)  # the pipe holds far less than 3000 lines
            # Stopping does not hang on the blocked sink either.
            usher.signal(signal.SIGTERM)
            self.assertEqual(usher.wait(timeout=10), 0)
        finally:
            usher.stop()
            os.close(reader)


if __name__ == "__main__":
    unittest.main()
