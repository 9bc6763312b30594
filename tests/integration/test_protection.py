"""Protection (issue 22): rate limits, allow/deny lists, connection limits, a pool's
max_connections with its queue and breakers, request buffering, retries of idempotent routes and
the minimum body rate. Real usher and backend processes on loopback; client addresses 127.0.0.2,
127.0.0.3 and 127.0.0.5 are other loopback addresses the client sockets bind to. Every loop is
bounded in count and time, and each test stops only the processes it started."""
import hashlib
import http.client
import json
import os
import signal
import re
import select
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import unittest

from harness import USHER, Process, backend_stats, free_port, start_backend, wait_port, write_config

GET = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
DEFAULT_ROUTE = "      - name: app\n        pool: web\n"


def parse_metrics(text):
    """{(name, frozenset(labels)): value} of every sample."""
    samples = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$', line)
        if not match:
            continue
        name, labels, value = match.groups()
        pairs = frozenset(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', labels or ""))
        samples[(name, pairs)] = float(value)
    return samples


class Usher:
    """One usher with an admin listener (and an access log if asked), stopped by the test's
    cleanups. `listener` and `pool` are extra lines (indented four spaces) of the listener `web`
    and the pool `web`; `routes` the listener's route list; `top` top-level lines."""

    def __init__(self, test, backends, listener="", routes=DEFAULT_ROUTE, pool="", top="", workers=1,
                 access_log=False):
        self.port, self.admin = free_port(), free_port()
        self.log_path = None
        if access_log:
            directory = tempfile.mkdtemp()
            test.addCleanup(shutil.rmtree, directory, True)
            self.log_path = os.path.join(directory, "access.log")
            top += f"access_log: {self.log_path}\n"
        addresses = ", ".join(f"127.0.0.1:{p}" for p in backends)
        self.config = write_config(
            f"workers: {workers}\nadmin: {{ listen: 127.0.0.1:{self.admin} }}\n{top}"
            f"listeners:\n  - name: web\n    listen: 127.0.0.1:{self.port}\n{listener}    routes:\n{routes}"
            f"pools:\n  - name: web\n    backends: [{addresses}]\n{pool}")
        test.addCleanup(os.unlink, self.config)
        self.process = Process([USHER, "run", "-c", self.config], port=self.port)
        test.addCleanup(self.process.stop)
        wait_port(self.admin)

    def samples(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.admin, timeout=5)
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode()
        conn.close()
        return parse_metrics(text)

    def metric(self, name, **labels):
        return self.samples().get((name, frozenset(labels.items())))

    def wait_metric(self, name, expected, timeout=3.0, **labels):
        """The metric's value once it equals `expected`, or its last value after `timeout`
        (counters of a just-finished exchange may be added a moment after the client saw it)."""
        deadline = time.monotonic() + timeout
        value = self.metric(name, **labels)
        while value != expected and time.monotonic() < deadline:
            time.sleep(0.05)
            value = self.metric(name, **labels)
        return value

    def wait_idle(self):
        """Until usher has seen the close of harness's port probe, so that it does not count
        against a connection limit."""
        value = self.wait_metric("usher_listener_open_connections", 0, timeout=5, listener="web")
        assert value == 0, f"usher still counts {value} open connections"

    def records(self, count, timeout=5.0):
        """The access log's JSON records once there are at least `count` (or after `timeout`)."""
        deadline = time.monotonic() + timeout
        lines = []
        while time.monotonic() < deadline:
            if os.path.exists(self.log_path):
                with open(self.log_path) as f:
                    lines = [line for line in f.read().splitlines() if line.strip()]
                if len(lines) >= count:
                    break
            time.sleep(0.05)
        return [json.loads(line) for line in lines]


def backend(test, name="a"):
    port, process = start_backend(name)
    test.addCleanup(process.stop)
    return port


def upstream_requests(port):
    """Requests the backend has received, those for /stats aside."""
    return backend_stats(port)["other_requests"]


def get(port, path="/", source="127.0.0.1", headers=None, timeout=5):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout, source_address=(source, 0))
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        body = response.read()
        return response.status, dict(response.getheaders()), body
    finally:
        conn.close()


def closed_unread(port, source, payload=GET, timeout=3.0):
    """Connects from `source`, sends `payload` and reads: (bytes received, how it ended), where
    how is "eof" or "reset" if usher closed the connection and "open" if it stayed open for
    `timeout` seconds."""
    s = socket.socket()
    s.settimeout(timeout)
    try:
        s.bind((source, 0))
        s.connect(("127.0.0.1", port))
        data = b""
        try:
            if payload:
                s.sendall(payload)
            while len(data) < 65536:
                chunk = s.recv(4096)
                if not chunk:
                    return data, "eof"
                data += chunk
            return data, "open"
        except (ConnectionResetError, BrokenPipeError):
            return data, "reset"
        except socket.timeout:
            return data, "open"
    finally:
        s.close()


def read_response(s, timeout):
    """(status, head text, body) of one response on `s`; status None if the connection ended (or
    `timeout` passed) before a whole head arrived."""
    s.settimeout(timeout)
    deadline = time.monotonic() + timeout
    data = b""
    try:
        while b"\r\n\r\n" not in data and time.monotonic() < deadline:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        if b"\r\n\r\n" not in data:
            return None, data.decode("latin-1"), b""
        head, body = data.split(b"\r\n\r\n", 1)
        length = re.search(rb"(?im)^content-length:\s*(\d+)\s*$", head)
        while length and len(body) < int(length.group(1)) and time.monotonic() < deadline:
            chunk = s.recv(65536)
            if not chunk:
                break
            body += chunk
    except (socket.timeout, ConnectionResetError):
        if b"\r\n\r\n" not in data:
            return None, data.decode("latin-1"), b""
        head, body = data.split(b"\r\n\r\n", 1)
    return int(head[9:12]), head.decode("latin-1"), body


def crowd(port, path, clients):
    """`clients` requests at once, each on its own connection (connected first, then released
    together): a list of (status, fields, body, seconds) in no particular order; status None
    with the error as body if the exchange failed."""
    barrier = threading.Barrier(clients, timeout=10)
    results, lock = [], threading.Lock()

    def one():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
        try:
            conn.connect()
            barrier.wait()
            started = time.monotonic()
            conn.request("GET", path)
            response = conn.getresponse()
            body = response.read()
            result = (response.status, dict(response.getheaders()), body, time.monotonic() - started)
        except (OSError, http.client.HTTPException, threading.BrokenBarrierError) as e:
            result = (None, {}, repr(e).encode(), 0.0)
        finally:
            conn.close()
        with lock:
            results.append(result)

    threads = [threading.Thread(target=one) for _ in range(clients)]
    for t in threads:
        t.start()
    return threads, results


def join(threads, timeout=30):
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(timeout=max(0.0, deadline - time.monotonic()))
    return not any(t.is_alive() for t in threads)


class RateLimit(unittest.TestCase):
    def test_a_listener_rate_limit_is_process_wide_and_per_client(self):
        # 50/s with a burst of 10: over 2 s a client gets about 10 + 50 x 2 = 110 requests through,
        # whichever of the 4 workers its 8 connections land on; if each worker kept its own
        # table, it would be about 4 x 110 (and all 400 would pass).
        b = backend(self)
        usher = Usher(self, [b], workers=4,
                      listener="    rate_limit: { key: client-ip, rate: 50/s, burst: 10 }\n")
        total, connections, span = 400, 8, 2.0
        flood, calm, lock = [], [], threading.Lock()
        sent_at = []
        start_at = time.monotonic() + 0.3

        def client(source, indexes, interval_of, out):
            conn = http.client.HTTPConnection("127.0.0.1", usher.port, timeout=5, source_address=(source, 0))
            for i in indexes:
                time.sleep(max(0.0, start_at + interval_of(i) - time.monotonic()))
                try:
                    if out is flood:
                        with lock:
                            sent_at.append(time.monotonic())
                    conn.request("GET", "/")
                    response = conn.getresponse()
                    response.read()
                    result = (response.status, response.getheader("Retry-After"),
                              response.getheader("RateLimit-Policy"), response.getheader("RateLimit"))
                except (OSError, http.client.HTTPException) as e:
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", usher.port, timeout=5,
                                                      source_address=(source, 0))
                    result = (None, repr(e), None, None)
                with lock:
                    out.append(result)
            conn.close()

        threads = [threading.Thread(target=client, args=("127.0.0.1", range(k, total, connections),
                                                         lambda i: i * span / total, flood))
                   for k in range(connections)]
        # Another client at 10/s (within its own rate) through the same 2 s.
        threads.append(threading.Thread(target=client, args=("127.0.0.2", range(20), lambda i: i * 0.1, calm)))
        for t in threads:
            t.start()
        self.assertTrue(join(threads, timeout=30), "the clients did not finish")

        statuses = [r[0] for r in flood]
        served, limited = statuses.count(200), statuses.count(429)
        sending = max(sent_at) - min(sent_at)
        print(f"\n400 requests over {sending:.2f} s: {served} x 200, {limited} x 429; "
              f"other client: {[r[0] for r in calm]}")
        self.assertEqual(len(flood), total)
        self.assertEqual(served + limited, total, f"other answers: {[r for r in flood if r[0] not in (200, 429)][:5]}")
        self.assertLess(sending, 2.3, "the client could not keep its pace; the count below would mean little")
        self.assertGreaterEqual(served, 100)
        self.assertLessEqual(served, 125)
        for status, retry_after, policy, state in flood:
            if status != 429:
                continue
            self.assertIsNotNone(retry_after, "a 429 without Retry-After")
            self.assertRegex(retry_after, r"^\d+$")
            self.assertLessEqual(int(retry_after), 2)  # the next request is allowed 20 ms later
            self.assertIsNotNone(policy, "a 429 without RateLimit-Policy")
            self.assertIsNotNone(state, "a 429 without RateLimit")
            policy_match = re.fullmatch(r'"([^"]+)";q=(\d+);w=(\d+)', policy)
            state_match = re.fullmatch(r'"([^"]+)";r=(\d+);t=(\d+)', state)
            self.assertIsNotNone(policy_match, policy)
            self.assertIsNotNone(state_match, state)
            self.assertEqual(policy_match.group(2), "10")  # q: the burst
            self.assertEqual(state_match.group(1), policy_match.group(1))
            self.assertEqual(state_match.group(2), "0")  # refused: nothing remains
        self.assertEqual([r[0] for r in calm], [200] * 20)
        self.assertEqual(usher.wait_metric("usher_listener_rate_limited_total", limited, listener="web"), limited)
        self.assertEqual(upstream_requests(b), served + 20)  # the 429s reached no backend

    def test_a_route_rate_limit_keyed_by_a_header(self):
        b = backend(self)
        usher = Usher(self, [b], access_log=True, routes=(
            "      - name: login\n"
            "        match: { path_prefix: /login }\n"
            "        pool: web\n"
            "        rate_limit: { key: 'header:X-Api-Key', rate: 2/m, burst: 3 }\n"
            + DEFAULT_ROUTE))
        k1 = [get(usher.port, "/login", headers={"X-Api-Key": "k1"}) for _ in range(4)]
        self.assertEqual([s for s, _, _ in k1], [200, 200, 200, 429])
        fields = k1[3][1]
        # One request every 30 s after the burst of 3: the next is allowed about 30 s later.
        self.assertRegex(fields.get("Retry-After", ""), r"^\d+$")
        self.assertGreaterEqual(int(fields["Retry-After"]), 25)
        self.assertLessEqual(int(fields["Retry-After"]), 31)
        # q requests per w seconds is the rate: 3 per 90 s = 2/m.
        self.assertEqual(fields.get("RateLimit-Policy"), '"login";q=3;w=90')
        self.assertEqual(fields.get("RateLimit"), f'"login";r=0;t={fields["Retry-After"]}')
        # Another key, and another route, are not limited.
        self.assertEqual(get(usher.port, "/login", headers={"X-Api-Key": "k2"})[0], 200)
        self.assertEqual([get(usher.port, "/", headers={"X-Api-Key": "k1"})[0] for _ in range(5)], [200] * 5)
        self.assertEqual(usher.wait_metric("usher_route_rate_limited_total", 1, listener="web", route="login"), 1)
        self.assertEqual(usher.metric("usher_route_rate_limited_total", listener="web", route="app"), 0)
        self.assertEqual(usher.metric("usher_listener_rate_limited_total", listener="web"), 0)
        records = usher.records(10)
        self.assertEqual(len(records), 10)
        limited = [r for r in records if r["status"] == 429]
        self.assertEqual(len(limited), 1)
        self.assertEqual(limited[0].get("guard"), "rate_limit")
        self.assertEqual([r for r in records if r["status"] == 200 and "guard" in r], [])
        self.assertEqual(upstream_requests(b), 9)


class RateLimitReload(unittest.TestCase):
    def test_a_reload_that_keeps_the_limit_keeps_its_state(self):
        """docs/protection.md: a limit whose settings a reload keeps keeps its timestamps, so a
        reload does not hand every client a fresh burst; a changed limit starts afresh."""
        b = backend(self)
        route = ("      - name: login\n        match: { path_prefix: /login }\n        pool: web\n"
                 "        rate_limit: { rate: 2/m, burst: 2 }\n")
        usher = Usher(self, [b], routes=route + DEFAULT_ROUTE)
        self.assertEqual([get(usher.port, "/login")[0] for _ in range(3)], [200, 200, 429])
        with open(usher.config) as f:
            text = f.read()

        def reload(new_text, generation):
            with open(usher.config, "w") as f:
                f.write(new_text)
            usher.process.signal(signal.SIGHUP)
            self.assertEqual(usher.wait_metric("usher_config_generation", generation), generation)

        # Another route added, the limit as it was: still limited.
        reload(text.replace(DEFAULT_ROUTE, "      - name: extra\n        match: { path: /x }\n"
                                           "        pool: web\n" + DEFAULT_ROUTE), 2)
        self.assertEqual(get(usher.port, "/login")[0], 429)
        # The burst changed: a new limit, a fresh burst.
        reload(text.replace("burst: 2", "burst: 3"), 3)
        self.assertEqual([get(usher.port, "/login")[0] for _ in range(4)], [200, 200, 200, 429])


class AddressLists(unittest.TestCase):
    def test_a_denied_address_is_closed_at_accept_unread(self):
        b = backend(self)
        usher = Usher(self, [b], listener="    allow: [127.0.0.0/30]\n    deny: [127.0.0.3/32]\n")
        self.assertEqual(get(usher.port, source="127.0.0.1")[0], 200)
        self.assertEqual(get(usher.port, source="127.0.0.2")[0], 200)
        # 127.0.0.3 is in allow, but deny wins; 127.0.0.5 is outside allow.
        for source, payload in (("127.0.0.3", GET), ("127.0.0.3", GET), ("127.0.0.5", GET)):
            data, how = closed_unread(usher.port, source, payload)
            self.assertEqual(data, b"", f"{source} got bytes back")
            self.assertIn(how, ("eof", "reset"), f"{source}: the connection stayed open")
        # Closed at accept: a client that sends nothing is closed too, without waiting for a head.
        started = time.monotonic()
        data, how = closed_unread(usher.port, "127.0.0.3", payload=b"", timeout=3)
        self.assertEqual(data, b"")
        self.assertIn(how, ("eof", "reset"), "a silent denied client stayed open")
        self.assertLess(time.monotonic() - started, 1.0)
        self.assertEqual(get(usher.port, source="127.0.0.1")[0], 200)  # still served
        self.assertEqual(usher.wait_metric("usher_listener_refused_connections_total", 4,
                                           listener="web", reason="denied"), 4)
        self.assertEqual(usher.metric("usher_listener_refused_connections_total",
                                      listener="web", reason="per_client"), 0)
        self.assertEqual(upstream_requests(b), 3)

    def test_a_route_deny_is_a_403_for_the_real_client(self):
        b = backend(self)
        usher = Usher(self, [b], access_log=True, listener="    trusted_proxies: [127.0.0.2/32]\n", routes=(
            "      - name: admin\n"
            "        match: { path_prefix: /admin }\n"
            "        pool: web\n"
            "        deny: [203.0.113.0/24]\n"
            + DEFAULT_ROUTE))
        spoofed = {"X-Forwarded-For": "203.0.113.7"}
        self.assertEqual(get(usher.port, "/admin")[0], 200)
        # Through the trusted proxy 127.0.0.2 the real client is 203.0.113.7: denied.
        status, fields, body = get(usher.port, "/admin", source="127.0.0.2", headers=spoofed)
        self.assertEqual(status, 403, body)
        self.assertEqual(get(usher.port, "/", source="127.0.0.2", headers=spoofed)[0], 200)  # another route
        self.assertEqual(get(usher.port, "/admin", source="127.0.0.2",
                             headers={"X-Forwarded-For": "198.51.100.1"})[0], 200)
        # From an untrusted peer the header is not believed: the client is 127.0.0.1.
        self.assertEqual(get(usher.port, "/admin", source="127.0.0.1", headers=spoofed)[0], 200)
        self.assertEqual(usher.wait_metric("usher_route_denied_total", 1, listener="web", route="admin"), 1)
        self.assertEqual(usher.metric("usher_route_denied_total", listener="web", route="app"), 0)
        self.assertEqual(upstream_requests(b), 4)  # the 403 reached no backend
        records = usher.records(5)
        denied = [r for r in records if r["status"] == 403]
        self.assertEqual(len(denied), 1, records)
        self.assertEqual(denied[0].get("guard"), "denied")
        self.assertEqual(denied[0]["route"], "admin")


class ConnectionLimits(unittest.TestCase):
    def hold(self, port, source):
        """A keep-alive connection that has been served once, kept open until cleanup."""
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5, source_address=(source, 0))
        self.addCleanup(conn.close)
        conn.request("GET", "/")
        response = conn.getresponse()
        response.read()
        self.assertEqual(response.status, 200)
        return conn

    def served_again(self, port, source, timeout=3.0):
        """Whether a new connection from `source` is served within `timeout`, once a place
        has been given back (usher sees the close a moment after the client closes)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if get(port, source=source, timeout=1)[0] == 200:
                    return True
            except (OSError, http.client.HTTPException):
                pass
            time.sleep(0.1)
        return False

    def test_max_connections_per_client(self):
        b = backend(self)
        usher = Usher(self, [b], workers=2, listener="    max_connections_per_client: 2\n")
        usher.wait_idle()
        held = [self.hold(usher.port, "127.0.0.1") for _ in range(2)]
        data, how = closed_unread(usher.port, "127.0.0.1")
        self.assertEqual(data, b"", "a third connection from 127.0.0.1 got an answer")
        self.assertIn(how, ("eof", "reset"), "a third connection from 127.0.0.1 stayed open")
        self.assertEqual(get(usher.port, source="127.0.0.2")[0], 200)
        self.hold(usher.port, "127.0.0.2")
        self.assertEqual(usher.wait_metric("usher_listener_refused_connections_total", 1,
                                           listener="web", reason="per_client"), 1)
        self.assertEqual(usher.metric("usher_listener_refused_connections_total",
                                      listener="web", reason="max_connections"), 0)
        # The held connections are still served.
        for conn in held:
            conn.request("GET", "/")
            response = conn.getresponse()
            response.read()
            self.assertEqual(response.status, 200)
        held[0].close()
        self.assertTrue(self.served_again(usher.port, "127.0.0.1"), "the place was not given back")

    def test_max_connections_on_the_listener(self):
        b = backend(self)
        usher = Usher(self, [b], workers=2, listener="    max_connections: 2\n")
        usher.wait_idle()
        first = self.hold(usher.port, "127.0.0.1")
        self.hold(usher.port, "127.0.0.2")
        data, how = closed_unread(usher.port, "127.0.0.3")
        self.assertEqual(data, b"", "a third connection got an answer")
        self.assertIn(how, ("eof", "reset"), "a third connection stayed open")
        self.assertEqual(usher.wait_metric("usher_listener_refused_connections_total", 1,
                                           listener="web", reason="max_connections"), 1)
        first.close()
        self.assertTrue(self.served_again(usher.port, "127.0.0.3"), "the place was not given back")


class PoolQueue(unittest.TestCase):
    """max_connections: 2 on one backend that takes its time; 20 clients at once."""
    clients = 20

    def test_requests_beyond_max_connections_wait_in_the_queue(self):
        b = backend(self)
        usher = Usher(self, [b], workers=2, access_log=True,
                      pool="    max_connections: 2\n    queue: { max: 100, timeout: 10s }\n")
        threads, results = crowd(usher.port, "/sleep?ms=300", self.clients)
        deepest, deadline = 0, time.monotonic() + 20
        while any(t.is_alive() for t in threads) and time.monotonic() < deadline:
            deepest = max(deepest, usher.metric("usher_pool_queue_depth", pool="web") or 0)
            time.sleep(0.05)
        self.assertTrue(join(threads), "the clients did not finish")
        stats = backend_stats(b)
        slowest = max(r[3] for r in results)
        print(f"\n{self.clients} clients: at most {stats['max_in_flight']} at once at the backend, "
              f"deepest queue {deepest:.0f}, slowest {slowest:.2f} s")
        self.assertEqual([r[0] for r in results], [200] * self.clients, [r[2] for r in results if r[0] != 200])
        self.assertLessEqual(stats["max_in_flight"], 2)
        self.assertEqual(stats["max_in_flight"], 2)  # and both places were used
        self.assertEqual(stats["other_requests"], self.clients)
        self.assertGreaterEqual(deepest, 10)
        self.assertEqual(usher.metric("usher_pool_queue_depth", pool="web"), 0)
        self.assertEqual(usher.metric("usher_pool_queue_timeouts_total", pool="web"), 0)
        self.assertGreaterEqual(usher.metric("usher_pool_queue_wait_seconds_count", pool="web"), 18)
        self.assertGreaterEqual(usher.metric("usher_pool_queue_wait_seconds_sum", pool="web"), 15)
        records = usher.records(self.clients)
        self.assertEqual(len(records), self.clients)
        waits = sorted(r["queue_ms"] for r in records)
        # Two at a time for 300 ms each: the last two waited about 9 x 300 ms.
        self.assertGreaterEqual(waits[-1], 2000, waits)
        self.assertGreaterEqual(sum(1 for w in waits if w >= 250), 16, waits)
        self.assertEqual([r for r in records if "guard" in r], [])

    def test_a_queue_timeout_is_a_503_with_retry_after(self):
        b = backend(self)
        usher = Usher(self, [b], workers=2, access_log=True,
                      pool="    max_connections: 2\n    queue: { max: 100, timeout: 200ms }\n")
        threads, results = crowd(usher.port, "/sleep?ms=600", self.clients)
        self.assertTrue(join(threads), "the clients did not finish")
        served = [r for r in results if r[0] == 200]
        timed_out = [r for r in results if r[0] == 503]
        print(f"\n{len(served)} x 200, {len(timed_out)} x 503 after "
              f"{min((r[3] for r in timed_out), default=0):.3f}..{max((r[3] for r in timed_out), default=0):.3f} s")
        self.assertEqual(len(served) + len(timed_out), self.clients, [r[2] for r in results])
        self.assertEqual(len(served), 2)  # the backend's 600 ms outlast every waiter's 200 ms
        for status, fields, body, took in timed_out:
            self.assertRegex(fields.get("Retry-After", ""), r"^\d+$", "a 503 without Retry-After")
            self.assertRegex(fields.get("X-Request-Id", ""), r"^[0-9a-f-]{36}$",
                             "usher's 503 carries the request's id like its other answers")
            self.assertGreaterEqual(took, 0.18)  # waited its time in the queue
            self.assertLess(took, 0.55)  # and no longer: not until a place freed
        self.assertEqual(usher.wait_metric("usher_pool_queue_timeouts_total", len(timed_out), pool="web"),
                         len(timed_out))
        stats = backend_stats(b)
        self.assertEqual(stats["other_requests"], 2)  # the late ones never reached it
        self.assertLessEqual(stats["max_in_flight"], 2)
        records = usher.records(self.clients)
        late = [r for r in records if r["status"] == 503]
        self.assertEqual(len(late), len(timed_out))
        for r in late:
            self.assertEqual(r.get("guard"), "queue_timeout")
            self.assertGreaterEqual(r["queue_ms"], 180)

    def test_a_full_queue_is_a_503_at_once(self):
        b = backend(self)
        usher = Usher(self, [b], workers=2, access_log=True,
                      pool="    max_connections: 2\n    queue: { max: 5, timeout: 10s }\n")
        threads, results = crowd(usher.port, "/sleep?ms=400", self.clients)
        self.assertTrue(join(threads), "the clients did not finish")
        served = [r for r in results if r[0] == 200]
        refused = [r for r in results if r[0] == 503]
        self.assertEqual(len(served) + len(refused), self.clients, [r[2] for r in results])
        self.assertEqual(len(served), 7)  # 2 in flight and 5 waiting
        for status, fields, body, took in refused:
            self.assertRegex(fields.get("Retry-After", ""), r"^\d+$", "a 503 without Retry-After")
            self.assertRegex(fields.get("X-Request-Id", ""), r"^[0-9a-f-]{36}$",
                             "usher's 503 carries the request's id like its other answers")
            self.assertLess(took, 0.3)  # at once, not after a wait (a place frees after 400 ms)
        self.assertEqual(usher.wait_metric("usher_circuit_breaker_trips_total", len(refused),
                                           pool="web", kind="queue_full"), len(refused))
        self.assertEqual(usher.metric("usher_pool_queue_timeouts_total", pool="web"), 0)
        self.assertEqual(upstream_requests(b), 7)
        records = usher.records(self.clients)
        self.assertEqual(sorted(r.get("guard", "") for r in records if r["status"] == 503),
                         ["queue_full"] * len(refused))


class RetryBreaker(unittest.TestCase):
    def test_max_pending_retries_bounds_the_retries_in_flight(self):
        """Six requests at once all get a 503 worth retrying; each retry waits out a 600 ms
        backoff, so they would all be in flight together. With max_pending_retries: 1, one
        request retries and the other five get the failed try's answer at once."""
        b = backend(self)
        usher = Usher(self, [b], workers=2,
                      pool="    max_pending_retries: 1\n"
                           "    retries: { attempts: 2, backoff: 600ms, statuses: [503] }\n")
        threads, results = crowd(usher.port, "/status?code=503", 6)
        self.assertTrue(join(threads), "the clients did not finish")
        self.assertEqual(sorted(r[0] for r in results), [503] * 6, [r[2] for r in results])
        quick = [r for r in results if r[3] < 0.25]
        self.assertEqual(len(quick), 5, [round(r[3], 3) for r in results])
        self.assertEqual(usher.wait_metric("usher_circuit_breaker_trips_total", 5, pool="web",
                                           kind="retries"), 5)
        self.assertEqual(usher.metric("usher_pool_retries_total", pool="web"), 1)
        self.assertEqual(upstream_requests(b), 7)  # six first tries and one retry


class BufferedRequests(unittest.TestCase):
    MALFORMED = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"
    HEAD = b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"

    def test_a_malformed_chunked_body_reaches_no_backend(self):
        b = backend(self)
        usher = Usher(self, [b], pool="    buffer_request: 64KiB\n")
        with socket.create_connection(("127.0.0.1", usher.port), timeout=5) as s:
            s.sendall(self.MALFORMED)
            status, head, _ = read_response(s, 5)
        self.assertEqual(status, 400, head)
        self.assertEqual(upstream_requests(b), 0)

        # The head first: while its body is still to come, no backend has been chosen.
        with socket.create_connection(("127.0.0.1", usher.port), timeout=5) as s:
            s.sendall(self.HEAD)
            time.sleep(0.3)
            self.assertEqual(upstream_requests(b), 0, "the head went upstream before the body was read")
            s.sendall(b"zz\r\nhello\r\n0\r\n\r\n")
            status, head, _ = read_response(s, 5)
        self.assertEqual(status, 400, head)
        self.assertEqual(upstream_requests(b), 0)

        # A well-formed body arrives whole once it has been read.
        with socket.create_connection(("127.0.0.1", usher.port), timeout=5) as s:
            s.sendall(self.HEAD)
            time.sleep(0.3)
            self.assertEqual(upstream_requests(b), 0, "the head went upstream before the body was read")
            s.sendall(b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
            status, head, body = read_response(s, 5)
        self.assertEqual(status, 200, head)
        self.assertEqual(body, b"11 " + hashlib.sha256(b"hello world").hexdigest().encode())
        self.assertEqual(upstream_requests(b), 1)

    def test_without_buffering_the_head_goes_upstream_first(self):
        b = backend(self)
        usher = Usher(self, [b])
        with socket.create_connection(("127.0.0.1", usher.port), timeout=5) as s:
            s.sendall(self.HEAD)
            deadline = time.monotonic() + 3
            while upstream_requests(b) == 0 and time.monotonic() < deadline:
                time.sleep(0.05)
            self.assertEqual(upstream_requests(b), 1)
            s.sendall(b"zz\r\nhello\r\n0\r\n\r\n")
            read_response(s, 3)

    def test_a_buffered_post_on_an_idempotent_route_is_retried_with_its_body(self):
        a, b = backend(self, "a"), backend(self, "b")
        usher = Usher(self, [a, b], pool="    buffer_request: 64KiB\n", routes=(
            "      - name: idem\n"
            "        match: { host: idem.test }\n"
            "        pool: web\n"
            "        idempotent: true\n"
            + DEFAULT_ROUTE))
        body = os.urandom(3000)
        expected = b"3000 " + hashlib.sha256(body).hexdigest().encode()

        def post(host):
            with socket.create_connection(("127.0.0.1", usher.port), timeout=5) as s:
                # Backend a reads the whole body, then resets the connection; b answers.
                s.sendall(b"POST /upload?reset=a HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n\r\n"
                          % (host, len(body)) + body)
                status, _, answer = read_response(s, 5)
                return status, answer

        results = [post(b"idem.test") for _ in range(4)]
        self.assertEqual(results, [(200, expected)] * 4)
        tried_a = upstream_requests(a)
        self.assertGreaterEqual(tried_a, 1, "no request started on a: the retry was not exercised")
        self.assertEqual(upstream_requests(b), 4)
        # The same POST on a route not marked idempotent is not replayed after a reset.
        plain = [post(b"plain.test")[0] for _ in range(4)]
        reset_on_a = upstream_requests(a) - tried_a
        self.assertGreaterEqual(reset_on_a, 1, plain)
        self.assertEqual(sorted(plain), sorted([200] * (4 - reset_on_a) + [502] * reset_on_a))


class MinBodyRate(unittest.TestCase):
    SIZE = 10240

    def upload(self, port, piece, interval, limit=6.0):
        """POSTs SIZE bytes, `piece` bytes every `interval` s: (status, seconds from the head to
        the answer, bytes sent, body)."""
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        payload = os.urandom(self.SIZE)
        try:
            s.sendall(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % self.SIZE)
            started, sent = time.monotonic(), 0
            while time.monotonic() - started < limit:
                readable, _, _ = select.select([s], [], [], 0 if sent < self.SIZE else 0.1)
                if readable:
                    break
                if sent < self.SIZE:
                    try:
                        s.sendall(payload[sent:sent + piece])
                    except (BrokenPipeError, ConnectionResetError):
                        break
                    sent += len(payload[sent:sent + piece])
                    time.sleep(interval)
            took = time.monotonic() - started
            status, head, body = read_response(s, 3)
            return status, took, sent, body, hashlib.sha256(payload).hexdigest().encode()
        finally:
            s.close()

    def test_a_trickled_body_is_a_408(self):
        b = backend(self)
        usher = Usher(self, [b], access_log=True,
                      top="limits:\n  min_body_rate: { bytes_per_second: 1KiB, window: 1s }\n")
        status, took, sent, _, _ = self.upload(usher.port, 10, 0.1)  # 100 B/s
        print(f"\n408 after {took:.2f} s and {sent} bytes" if status == 408 else f"\n{status} after {took:.2f} s")
        self.assertEqual(status, 408)
        self.assertGreaterEqual(took, 0.8)  # not before a window has passed
        self.assertLess(took, 3.0)  # about two windows of 1 s at most
        self.assertLess(sent, self.SIZE)
        # A body well above the rate, taking longer than a window, is not cut.
        status, took, sent, body, digest = self.upload(usher.port, 640, 0.1)  # 6.4 KB/s, 1.6 s
        self.assertEqual(status, 200)
        self.assertGreater(took, 1.2)
        self.assertEqual(body, b"%d %s" % (self.SIZE, digest))
        records = usher.records(2)
        self.assertEqual([(r["status"], r.get("guard")) for r in records], [(408, "body_rate"), (200, None)])


class Check(unittest.TestCase):
    VALID = """workers: 4
listeners:
  - name: web
    listen: 127.0.0.1:8080
    allow: [10.0.0.0/8, 127.0.0.0/8]
    deny: [127.0.0.3/32]
    max_connections: 100
    max_connections_per_client: 10
    rate_limit: { key: client-ip, rate: 50/s, burst: 10 }
    routes:
      - name: login
        match: { path_prefix: /login }
        pool: web
        allow: [127.0.0.0/8]
        deny: [127.0.0.9/32]
        rate_limit: { key: client-ip, rate: 5/s, burst: 10 }
        idempotent: true
      - name: api
        match: { path_prefix: /api }
        pool: web
        rate_limit: { key: 'header:X-Api-Key', rate: 300/m }
      - name: session
        match: { path_prefix: /session }
        pool: web
        rate_limit: { key: 'cookie:sid', rate: 1000/h }
      - name: search
        match: { path_prefix: /search }
        pool: web
        rate_limit: { key: 'query:q', rate: 2/s, burst: 4 }
      - name: any
        pool: web
        rate_limit: { key: uri, rate: 100/s }
pools:
  - name: web
    backends: [127.0.0.1:9001]
    max_connections: 2
    queue: { max: 1000, timeout: 5s }
    max_pending_retries: 10
    buffer_request: 64KiB
limits:
  min_body_rate: { bytes_per_second: 1KiB, window: 2s }
"""

    def check(self, text):
        path = write_config(text)
        self.addCleanup(os.unlink, path)
        result = subprocess.run([USHER, "check", "-c", path], capture_output=True, text=True, timeout=10)
        return path, result

    @staticmethod
    def places(text, line_marker, *column_markers):
        """FILE:LINE:COL suffixes (":LINE:COL") of each of `column_markers` on the line that
        contains `line_marker`: the key or its value, either is a fine place for the error."""
        for number, line in enumerate(text.splitlines(), 1):
            if line_marker in line:
                start = line.index(line_marker)
                return [f":{number}:{line.index(m, start) + 1}" for m in column_markers]
        raise AssertionError(f"{line_marker!r} not in the config")

    def assert_placed(self, path, stderr, places, words):
        alternatives = "|".join(re.escape(path + p) for p in places)
        self.assertRegex(stderr, rf"(?m)^(?:{alternatives}): .*{words}")

    def test_the_protection_settings_are_accepted(self):
        _, result = self.check(self.VALID)
        self.assertEqual(result.returncode, 0, result.stderr)

    def test_a_queue_without_max_connections_is_placed(self):
        text = self.VALID.replace("    max_connections: 2\n", "")
        path, result = self.check(text)
        self.assertEqual(result.returncode, 1)
        self.assert_placed(path, result.stderr, self.places(text, "queue:", "queue", "{"), "max_connections")

    def test_a_bad_rate_is_placed(self):
        text = self.VALID.replace("rate: 5/s", "rate: 5/x")
        path, result = self.check(text)
        self.assertEqual(result.returncode, 1)
        self.assert_placed(path, result.stderr, self.places(text, "rate: 5/x", "rate", "5/x"), "5/x")


if __name__ == "__main__":
    unittest.main()
