"""Clients that misbehave or a machine that runs short: an error answer survives the body the
client is still sending (lingering close), running out of descriptors is logged, counted and does
not spin, and a crowd of slow readers does not slow other clients down."""
import http.client
import os
import re
import resource
import socket
import time
import unittest

from harness import USHER, Process, free_port, start_backend, wait_port, write_config

SANITIZED = bool(os.environ.get("USHER_SANITIZED"))
BAD_HEAD = b"POST /upload HTTP/1.1\r\nHost: x\r\nBad Header\r\nContent-Length: %d\r\n\r\n"


def start(backend_port, workers=1, extra="", **kwargs):
    port, admin = free_port(), free_port()
    config = write_config(f"""workers: {workers}
admin: {{ listen: 127.0.0.1:{admin} }}
{extra}listeners:
  - name: web
    listen: 127.0.0.1:{port}
    pool: web
pools:
  - name: web
    backends: [127.0.0.1:{backend_port}]
""")
    usher = Process([USHER, "run", "-c", config], port=port, **kwargs)
    wait_port(admin)
    return port, admin, usher


def get(port, path, timeout=10):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    conn.request("GET", path)
    response = conn.getresponse()
    body = response.read()
    conn.close()
    return response.status, body


def metric(admin, name, **labels):
    _, text = get(admin, "/metrics")
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    match = re.search(rf"^{name}\{{{re.escape(want)}\}} (\S+)$", text.decode(), re.M)
    return float(match.group(1)) if match else None


class WithUsher(unittest.TestCase):
    """One usher in front of one backend for the whole class."""

    @classmethod
    def setUpClass(cls):
        cls.backend = start_backend("a")
        cls.port, cls.admin, cls.usher = start(cls.backend[0])

    @classmethod
    def tearDownClass(cls):
        cls.usher.stop()
        cls.backend[1].stop()


class LingeringClose(WithUsher):
    """After an error answer usher stops writing and discards what the client still sends until
    the client closes, 5 s of silence or 30 s in all, so the answer is not lost to a reset."""

    def test_a_bad_request_followed_by_a_large_body_always_gets_its_400(self):
        # As most clients do: send the whole request, then read. A reset while sending is a
        # failure too, since such a client never gets to read the answer.
        body = b"x" * (16 << 20)  # more than the kernel buffers of both ends hold
        for attempt in range(50):
            with socket.create_connection(("127.0.0.1", self.port), timeout=10) as s:
                try:
                    s.sendall(BAD_HEAD % len(body) + body)
                    answer = s.recv(12)
                except ConnectionError as e:
                    answer = repr(e).encode()
                self.assertEqual(answer, b"HTTP/1.1 400", f"attempt {attempt}")

    def open_connections(self):
        return metric(self.admin, "usher_listener_open_connections", listener="web")

    def linger_time(self, keep_sending):
        """Seconds from the 400 until usher closes the connection (its open-connection gauge
        falls); the client never closes, and sends a byte a second if keep_sending."""
        deadline = time.monotonic() + 10
        while self.open_connections() != 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as s:
            s.sendall(BAD_HEAD % 100)
            self.assertEqual(s.recv(12), b"HTTP/1.1 400")
            started = last_send = time.monotonic()
            while time.monotonic() - started < 40 and self.open_connections() != 0:
                if keep_sending and time.monotonic() - last_send >= 1:
                    s.send(b"y")
                    last_send = time.monotonic()
                time.sleep(0.1)
            return time.monotonic() - started

    def test_a_silent_client_is_closed_after_five_seconds(self):
        took = self.linger_time(keep_sending=False)
        self.assertGreater(took, 4.5)
        self.assertLess(took, 8)

    def test_a_client_that_keeps_sending_is_closed_after_thirty_seconds(self):
        took = self.linger_time(keep_sending=True)
        self.assertGreater(took, 29)
        self.assertLess(took, 34)


class DescriptorExhaustion(unittest.TestCase):
    """Under a descriptor limit that connections exceed, usher logs the failed accepts once in a
    while, counts them, does not spin, and serves again once connections close."""
    limit = 64

    def setUp(self):
        self.backend = start_backend("a")

    def tearDown(self):
        self.backend[1].stop()

    def test_out_of_descriptors_is_logged_counted_and_does_not_spin(self):
        limit = self.limit

        def low_limit():
            resource.setrlimit(resource.RLIMIT_NOFILE, (limit - 16, limit))

        port, admin, usher = start(self.backend[0], preexec_fn=low_limit)
        clients = []
        try:
            self.assertIn(f"descriptor limit: {limit} (raised from {limit - 16})", usher.output())
            for _ in range(limit + 40):
                clients.append(socket.create_connection(("127.0.0.1", port), timeout=5))
            # The admin listener runs out too; its accept loop must not spin either.
            clients.append(socket.create_connection(("127.0.0.1", admin), timeout=5))
            time.sleep(1.0)
            used = cpu_seconds(usher.pid)
            time.sleep(1.0)
            used = cpu_seconds(usher.pid) - used
            self.assertLess(used, 0.5, "usher burns CPU while out of descriptors")
            reports = usher.output().count("Too many open files")
            self.assertGreaterEqual(reports, 1, usher.output())
            self.assertLessEqual(reports, 2, usher.output())
            for c in clients:
                c.close()
            clients = []
            deadline = time.monotonic() + 10
            status = None
            while time.monotonic() < deadline and status != 200:
                try:
                    status, _ = get(port, "/", timeout=2)
                except OSError:
                    time.sleep(0.2)
            self.assertEqual(status, 200)
            self.assertGreater(metric(admin, "usher_listener_accept_errors_total",
                                      listener="web", reason="fd_limit"), 0)
            self.assertEqual(metric(admin, "usher_listener_accept_errors_total",
                                    listener="web", reason="memory"), 0)
        finally:
            for c in clients:
                c.close()
            usher.stop()


class SlowReaders(WithUsher):
    """A crowd that reads its responses a byte a second holds connections, not the worker: another
    client's downloads take about as long with the crowd as without it. On io_uring each stalled
    response's upstream socket holds a few receive buffers; the crowd is larger than the worker's
    ring can serve at that rate (1024 buffers, about 5 each), and still no receive of the
    downloads may find the ring empty."""
    crowd = 300

    def download_seconds(self, size, times=5):
        """The median of `times` downloads of `size` bytes, each on a fresh connection."""
        took = []
        for _ in range(times):
            started = time.monotonic()
            status, body = get(self.port, f"/big?bytes={size}", timeout=30)
            took.append(time.monotonic() - started)
            self.assertEqual((status, len(body)), (200, size))
        return sorted(took)[len(took) // 2]

    def shortages(self):
        return metric(self.admin, "usher_worker_receive_buffer_shortages_total", worker="0")

    def settled_shortages(self):
        """The count once the crowd's responses have all started and stalled: while they start,
        their first bursts may briefly take every buffer."""
        count, deadline = self.shortages(), time.monotonic() + 15
        while time.monotonic() < deadline:
            time.sleep(1)
            count, previous = self.shortages(), count
            if count == previous:
                break
        return count

    def test_a_slow_read_crowd_does_not_slow_another_download(self):
        alone = self.download_seconds(2 << 20)
        readers = []
        try:
            for _ in range(self.crowd):
                s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                s.sendall(b"GET /big?bytes=1048576 HTTP/1.1\r\nHost: x\r\n\r\n")
                s.setblocking(False)
                readers.append(s)
            before = self.settled_shortages()
            crowded = []
            for _ in range(3):  # a byte a second from each reader between the measurements
                time.sleep(1)
                for s in readers:
                    try:
                        s.recv(1)
                    except BlockingIOError:
                        pass
                crowded.append(self.download_seconds(2 << 20, times=3))
            shortages = self.shortages() - before
        finally:
            for s in readers:
                s.close()
        # The stalled sockets leave a quarter of the ring free (tests/unit/net/reactor_test.cc
        # shows the starvation without that bound at the reactor level).
        self.assertEqual(shortages, 0, f"alone {alone:.3f} s, crowded {crowded}")
        # Generous on purpose: loopback on a shared 2-core machine is noisy (more so under a
        # sanitizer); a worker that gave its turns to the crowd took seconds.
        bound = max(alone * (8 if SANITIZED else 4), 0.5 if SANITIZED else 0.25)
        self.assertLess(sorted(crowded)[1], bound, f"alone {alone:.3f} s, crowded {crowded}")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


if __name__ == "__main__":
    unittest.main()
