"""udp listeners: sessions per client address and port, each held to one backend; udp and dns
active health checks; max_sessions and session_idle; the PROXY protocol v2 header before each
datagram; what `usher check` refuses on a udp listener and its pool. The backends are UDP echo
servers and DNS responders in threads of the test, all on 127.0.0.1. Every loop is bounded in
count and time, and each test stops only the processes it started."""
import http.client
import os
import re
import signal
import socket
import struct
import subprocess
import threading
import time
import unittest

from harness import USHER, Process, free_port, write_config

PROXY_V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"


def free_udp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Responder:
    """A UDP server in a thread of the test: `answer(payload, source)` gives the reply (or None).
    Counts the datagrams it got from each source address."""

    def __init__(self, test, answer):
        self.answer = answer
        self.sources = {}
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.stopping = False
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()
        test.addCleanup(self.stop)

    def serve(self):
        while not self.stopping:
            try:
                payload, source = self.sock.recvfrom(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            self.sources[source] = self.sources.get(source, 0) + 1
            reply = self.answer(payload, source)
            if reply is not None:
                self.sock.sendto(reply, source)

    def stop(self):
        self.stopping = True
        self.thread.join(timeout=2)
        self.sock.close()


class Echo(Responder):
    """Answers "ping" with "pong" while `healthy`, anything else with NAME:payload."""

    def __init__(self, test, name):
        self.name = name.encode()
        self.healthy = True
        self.echoed = 0
        super().__init__(test, self.reply)

    def reply(self, payload, source):
        if payload == b"ping":
            return b"pong" if self.healthy else None
        self.echoed += 1
        return self.name + b":" + payload


def dns_answer(rcode, answers):
    """A DNS responder's answer function: the query's id and question back, with `rcode` and
    `answers` A records of 127.0.0.1."""
    def answer(query, source):
        if len(query) < 12 or query[2] & 0x80:
            return None
        question = query[12:]
        header = struct.pack("!HHHHHH", struct.unpack("!H", query[:2])[0], 0x8180 | rcode, 1, answers, 0, 0)
        record = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 4) + bytes([127, 0, 0, 1])
        return header + question + record * answers
    return answer


def parse_metrics(text):
    samples = {}
    for line in text.splitlines():
        match = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$', line)
        if match and not line.startswith("#"):
            name, labels, value = match.groups()
            samples[(name, frozenset(re.findall(r'(\w+)="([^"]*)"', labels or "")))] = float(value)
    return samples


class Usher:
    """usher with one udp listener `dns` in front of pool `echo`; `listener` and `pool` are extra
    lines (indented four spaces) of each."""

    def __init__(self, test, backends, listener="", pool="", workers=2):
        self.port, self.admin = free_udp_port(), free_port()
        addresses = ", ".join(f"127.0.0.1:{b.port}" for b in backends)
        self.config = write_config(
            f"workers: {workers}\nadmin: {{ listen: 127.0.0.1:{self.admin} }}\n"
            f"listeners:\n  - name: dns\n    listen: 127.0.0.1:{self.port}\n    protocol: udp\n"
            f"    pool: echo\n{listener}"
            f"pools:\n  - name: echo\n    backends: [{addresses}]\n{pool}")
        test.addCleanup(os.unlink, self.config)
        self.process = Process([USHER, "run", "-c", self.config], port=self.admin)
        test.addCleanup(self.process.stop)
        # The admin listener opens first; the udp sockets are bound before this line is logged.
        deadline = time.monotonic() + 5
        while f"listening on 127.0.0.1:{self.port}" not in self.process.output():
            assert time.monotonic() < deadline, self.process.output()
            time.sleep(0.02)

    def metric(self, name, **labels):
        conn = http.client.HTTPConnection("127.0.0.1", self.admin, timeout=5)
        conn.request("GET", "/metrics")
        samples = parse_metrics(conn.getresponse().read().decode())
        conn.close()
        return samples.get((name, frozenset(labels.items())))

    def wait_metric(self, name, expected, timeout, **labels):
        deadline = time.monotonic() + timeout
        value = self.metric(name, **labels)
        while value != expected and time.monotonic() < deadline:
            time.sleep(0.05)
            value = self.metric(name, **labels)
        return value


def client(test, timeout=2.0, source="127.0.0.1"):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((source, 0))
    s.settimeout(timeout)
    test.addCleanup(s.close)
    return s


def ask(s, port, payload, timeout=2.0):
    """Sends one datagram through usher and returns the reply, or None after `timeout`."""
    s.settimeout(timeout)
    s.sendto(payload, ("127.0.0.1", port))
    try:
        return s.recvfrom(65536)[0]
    except socket.timeout:
        return None


class Sessions(unittest.TestCase):
    def test_fifty_clients_each_stay_on_one_backend_and_lose_nothing(self):
        a, b = Echo(self, "a"), Echo(self, "b")
        usher = Usher(self, [a, b])
        clients = [client(self) for _ in range(50)]
        seen = [set() for _ in clients]
        lost = 0
        started = time.monotonic()
        # Every client has one datagram in flight at a time, all fifty at once: each reply must
        # be its own, from its own backend.
        for i in range(100):
            for n, s in enumerate(clients):
                s.sendto(f"{n}:{i}".encode(), ("127.0.0.1", usher.port))
            for n, s in enumerate(clients):
                try:
                    reply = s.recvfrom(65536)[0].decode()
                except socket.timeout:
                    lost += 1
                    continue
                name, payload = reply.split(":", 1)
                self.assertEqual(payload, f"{n}:{i}")
                seen[n].add(name)
            self.assertLess(time.monotonic() - started, 30, "too slow")
        self.assertEqual(lost, 0)
        self.assertTrue(all(len(names) == 1 for names in seen), seen)
        on_a = sum(1 for names in seen if names == {"a"})
        self.assertGreaterEqual(on_a, 20)
        self.assertLessEqual(on_a, 30)
        self.assertEqual(usher.metric("usher_udp_sessions_total", listener="dns"), 50)
        self.assertEqual(usher.metric("usher_udp_active_sessions", listener="dns"), 50)
        self.assertEqual(usher.metric("usher_udp_datagrams_total", listener="dns", direction="in"), 5000)
        self.assertEqual(usher.metric("usher_udp_datagrams_total", listener="dns", direction="out"), 5000)
        # One session socket per client at each backend.
        self.assertEqual(len(a.sources) + len(b.sources), 50)
        usher.process.signal(signal.SIGTERM)
        self.assertEqual(usher.process.wait(10), 0)


    def test_a_burst_from_one_client_arrives_datagram_by_datagram(self):
        # usher sends consecutive datagrams of one size to one place as a single UDP GSO send:
        # the backend and the client must still see each datagram on its own, whatever sizes
        # the burst mixes.
        sizes = [300] * 10 + [120] + [300] * 9 + [50, 50, 1400, 1400, 1400, 7] + [300] * 14
        received = []

        def answer(payload, source):
            received.append(len(payload))
            return payload

        backend = Responder(self, answer)
        usher = Usher(self, [backend], workers=1)
        s = client(self)
        sent = [(b"%03d" % i) + b"x" * (size - 3) for i, size in enumerate(sizes)]
        for datagram in sent:
            s.sendto(datagram, ("127.0.0.1", usher.port))
        replies = []
        for _ in sent:
            try:
                replies.append(s.recvfrom(65536)[0])
            except socket.timeout:
                break
        self.assertEqual(sorted(replies), sorted(sent))
        self.assertEqual(sorted(received), sorted(sizes))
        for _ in range(3):
            s.sendto(b"", ("127.0.0.1", usher.port))
        self.assertEqual([s.recvfrom(65536)[0] for _ in range(3)], [b""] * 3)

    def test_a_backend_port_nobody_listens_on_ends_the_session(self):
        closed = Responder(self, lambda payload, source: None)
        closed.stop()  # its port now answers with ICMP port unreachable
        usher = Usher(self, [closed], workers=1)
        s = client(self)
        self.assertIsNone(ask(s, usher.port, b"1", timeout=0.3))
        self.assertEqual(usher.wait_metric("usher_udp_active_sessions", 0, 3.0, listener="dns"), 0)
        self.assertIsNone(ask(s, usher.port, b"2", timeout=0.3))
        self.assertEqual(usher.metric("usher_udp_sessions_total", listener="dns"), 2)


class HealthChecks(unittest.TestCase):
    def test_a_backend_that_stops_answering_its_udp_check_leaves_the_pool(self):
        a, b = Echo(self, "a"), Echo(self, "b")
        usher = Usher(self, [a, b], pool=(
            "    health: { type: udp, send: ping, expect: pong, interval: 200ms, timeout: 150ms, "
            "rise: 1, fall: 2 }\n"))
        time.sleep(0.5)
        names = {ask(client(self), usher.port, b"x").split(b":")[0] for _ in range(10)}
        self.assertEqual(names, {b"a", b"b"})
        a.healthy = False
        started = time.monotonic()
        down = usher.wait_metric("usher_backend_up", 0, 3.0, pool="echo", backend=f"127.0.0.1:{a.port}")
        took = time.monotonic() - started
        self.assertEqual(down, 0)
        # interval x fall, plus the jitter (10 %) and a check's timeout, plus slack.
        self.assertLess(took, 0.2 * 2 * 1.1 + 0.15 + 1.0)
        self.assertRegex(usher.process.output(), r"UP -> DOWN after 2 failed checks \(last: timeout")
        names = [ask(client(self), usher.port, b"y").split(b":")[0] for _ in range(10)]
        self.assertEqual(names, [b"b"] * 10)

    def test_a_dns_check_passes_on_an_answer_and_fails_on_nxdomain_or_none(self):
        good = Responder(self, dns_answer(0, 1))
        nxdomain = Responder(self, dns_answer(3, 0))
        empty = Responder(self, dns_answer(0, 0))
        usher = Usher(self, [good, nxdomain, empty], pool=(
            "    health: { type: dns, query: db.example.com, interval: 200ms, timeout: 150ms, "
            "rise: 1, fall: 1 }\n"))
        for r in (nxdomain, empty):
            self.assertEqual(usher.wait_metric("usher_backend_up", 0, 3.0, pool="echo",
                                               backend=f"127.0.0.1:{r.port}"), 0)
        self.assertEqual(usher.metric("usher_backend_up", pool="echo", backend=f"127.0.0.1:{good.port}"), 1)
        output = usher.process.output()
        self.assertRegex(output, r"UP -> DOWN after 1 failed checks \(last: rcode NXDOMAIN")
        self.assertRegex(output, r"UP -> DOWN after 1 failed checks \(last: no answer")
        self.assertNotIn(f"127.0.0.1:{good.port} UP -> DOWN", output)
        # Traffic goes to the one that answers; its reply comes back whole.
        query = struct.pack("!HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0) + b"\x02db\x07example\x03com\x00\x00\x01\x00\x01"
        for _ in range(5):
            reply = ask(client(self), usher.port, query)
            self.assertEqual(reply[:2], b"\x12\x34")
            self.assertEqual(struct.unpack("!H", reply[6:8])[0], 1)
        self.assertGreater(sum(good.sources.values()), 5)  # the checks' queries and these five


class Limits(unittest.TestCase):
    def test_max_sessions_drops_a_third_client_until_a_session_goes_idle(self):
        a = Echo(self, "a")
        usher = Usher(self, [a], listener="    max_sessions: 2\n    session_idle: 400ms\n")
        first, second, third = client(self), client(self), client(self)
        self.assertEqual(ask(first, usher.port, b"1"), b"a:1")
        self.assertEqual(ask(second, usher.port, b"2"), b"a:2")
        self.assertIsNone(ask(third, usher.port, b"3", timeout=0.3))
        self.assertEqual(usher.metric("usher_udp_dropped_total", listener="dns", reason="max_sessions"), 1)
        self.assertEqual(usher.wait_metric("usher_udp_active_sessions", 0, 3.0, listener="dns"), 0)
        self.assertEqual(ask(third, usher.port, b"3"), b"a:3")
        self.assertEqual(usher.metric("usher_udp_sessions_total", listener="dns"), 3)


    def test_a_client_the_allow_list_leaves_out_is_dropped_and_counted(self):
        a = Echo(self, "a")
        usher = Usher(self, [a], listener="    allow: [127.0.0.2/32]\n")
        self.assertEqual(ask(client(self, source="127.0.0.2"), usher.port, b"in"), b"a:in")
        self.assertIsNone(ask(client(self), usher.port, b"out", timeout=0.3))
        self.assertEqual(usher.metric("usher_udp_dropped_total", listener="dns", reason="denied"), 1)
        self.assertEqual(usher.metric("usher_udp_sessions_total", listener="dns"), 1)


class ProxyProtocol(unittest.TestCase):
    def test_each_datagram_carries_a_v2_header_with_the_client_address(self):
        headers = []

        def answer(payload, source):
            head = payload[:16]
            self.assertEqual(head[:12], PROXY_V2_SIGNATURE)
            version_command, family, length = head[12], head[13], struct.unpack("!H", head[14:16])[0]
            src, dst, sport, dport = struct.unpack("!4s4sHH", payload[16:16 + length])
            headers.append((version_command, family, length))
            return (f"{socket.inet_ntoa(src)}:{sport}>{socket.inet_ntoa(dst)}:{dport}|".encode()
                    + payload[16 + length:])

        backend = Responder(self, answer)
        usher = Usher(self, [backend], pool="    proxy_protocol: v2\n")
        s = client(self)
        own = s.getsockname()
        for i in range(3):
            reply = ask(s, usher.port, f"hello {i}".encode())
            self.assertEqual(reply, f"{own[0]}:{own[1]}>127.0.0.1:{usher.port}|hello {i}".encode())
        # A burst, which may leave usher as one GSO send: a header before each datagram still.
        for i in range(10):
            s.sendto(f"burst {i}".encode(), ("127.0.0.1", usher.port))
        replies = sorted(s.recvfrom(65536)[0] for _ in range(10))
        self.assertEqual(replies, sorted(f"{own[0]}:{own[1]}>127.0.0.1:{usher.port}|burst {i}".encode()
                                         for i in range(10)))
        self.assertEqual(headers, [(0x21, 0x12, 12)] * 13)


class Check(unittest.TestCase):
    def test_usher_check_refuses_v1_and_http_keys_on_udp(self):
        config = write_config(
            "listeners:\n"
            "  - name: dns\n    listen: 127.0.0.1:5353\n    protocol: udp\n    pool: dns\n"
            "    trusted_proxies: [10.0.0.0/8]\n"
            "pools:\n"
            "  - name: dns\n    backends: [127.0.0.1:53]\n    proxy_protocol: v1\n"
            "    retries: { attempts: 2 }\n")
        self.addCleanup(os.unlink, config)
        result = subprocess.run([USHER, "check", "-c", config], capture_output=True, text=True, timeout=10)
        self.assertEqual(result.returncode, 1)
        errors = result.stderr + result.stdout
        self.assertIn(f"{config}:6:22: trusted_proxies applies to http listeners only", errors)
        self.assertIn(f"{config}:10:21: proxy_protocol v1 is for tcp (its header cannot say UDP); "
                      "a udp listener's pool takes v2", errors)
        self.assertIn(f"{config}:11:14: retries applies to HTTP only", errors)


if __name__ == "__main__":
    unittest.main()
