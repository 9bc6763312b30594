"""tcp listeners: round-robin over connections, a connect failure retried on the next backend,
a large transfer byte for byte in little memory, half-close, the idle timeout, the PROXY
protocol both ways (and refused from clients the listener does not trust), SNI passthrough to
backends with their own certificates, max_connections, metrics, the access log and `usher check`.
Real usher processes, backends in threads of the test, all on loopback; every loop is bounded."""
import hashlib
import json
import os
import re
import shutil
import socket
import ssl
import struct
import subprocess
import tempfile
import threading
import time
import unittest
import urllib.request

from harness import USHER, Process, free_port, read_until_close, start_backend, write_config
from l4_peers import (TcpServer, collect_then_answer, echo_with_name, proxy_reporter, tls_server)

SANITIZED = os.environ.get("USHER_SANITIZED") == "1"


def read_line(s):
    data = b""
    while not data.endswith(b"\n"):
        chunk = s.recv(1)
        if not chunk:
            break
        data += chunk
    return data.decode().strip()


class TcpUsher:
    """One usher with a tcp listener `front` and the given pools (name -> (backend ports, extra
    pool lines)), an admin listener and an access log."""

    def __init__(self, test, pools, listener="    pool: main\n", top=""):
        self.port, self.admin = free_port(), free_port()
        folder = tempfile.mkdtemp()
        test.addCleanup(shutil.rmtree, folder, True)
        self.log_path = os.path.join(folder, "access.log")
        text = (f"workers: 1\nadmin: {{ listen: 127.0.0.1:{self.admin} }}\naccess_log: {self.log_path}\n{top}"
                f"listeners:\n  - name: front\n    listen: 127.0.0.1:{self.port}\n    protocol: tcp\n{listener}"
                "pools:\n")
        for name, (ports, extra) in pools.items():
            backends = ", ".join(f"127.0.0.1:{p}" for p in ports)
            text += f"  - name: {name}\n    backends: [{backends}]\n{extra}"
        self.config = write_config(text)
        test.addCleanup(os.unlink, self.config)
        self.process = Process([USHER, "run", "-c", self.config], port=self.port)
        test.addCleanup(self.process.stop)
        self.settle()

    def settle(self, timeout=5.0):
        """Waits until no connection is open: the harness's own probe of the port (one
        connection, closed at once, logged and counted) has ended."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            logged = os.path.exists(self.log_path) and os.path.getsize(self.log_path) > 0
            if logged and self.metric(r'usher_tcp_active_connections\{listener="front"\}') == 0:
                return
            time.sleep(0.02)
        raise AssertionError("connections stayed open")

    def connect(self, source=None, timeout=5.0):
        s = socket.socket()
        if source:
            s.bind((source, 0))
        s.settimeout(timeout)
        s.connect(("127.0.0.1", self.port))
        return s

    def metrics(self):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.admin}/metrics", timeout=5) as r:
            return r.read().decode()

    def metric(self, pattern):
        match = re.search("^" + pattern + r" (\S+)$", self.metrics(), re.M)
        return float(match.group(1)) if match else None

    def log_lines(self, count, timeout=5.0):
        """The log's lines once there are `count` besides the harness's probe's (the first)."""
        deadline = time.monotonic() + timeout
        lines = []
        while True:
            if os.path.exists(self.log_path):
                with open(self.log_path) as f:
                    lines = [json.loads(line) for line in f if line.strip()]
            if len(lines) >= count + 1 or time.monotonic() >= deadline:
                return lines[1:]
            time.sleep(0.02)


class TcpProxyTest(unittest.TestCase):
    def server(self, handle):
        server = TcpServer(handle)
        self.addCleanup(server.close)
        return server

    def test_round_robin_over_300_connections(self):
        servers = [self.server(echo_with_name(f"b{i}")) for i in range(3)]
        usher = TcpUsher(self, {"main": ([s.port for s in servers], "")})
        seen = {}
        done = r'usher_tcp_connections_total\{listener="front",end="done"\}'
        before = usher.metric(done)
        for i in range(300):
            with usher.connect() as s:
                name = read_line(s)
                s.sendall(b"ping %d\n" % i)
                self.assertEqual(read_line(s), "ping %d" % i)
                seen[name] = seen.get(name, 0) + 1
        self.assertEqual(seen, {"b0": 100, "b1": 100, "b2": 100})
        usher.settle()  # the last connection's end is counted once usher has seen it
        self.assertEqual(usher.metric(done) - before, 300)
        # relay: auto (the default) keeps copying small messages: no direction turned to splice.
        self.assertEqual(usher.metric(r'usher_tcp_relay_splices_total\{listener="front"\}'), 0)

    def test_a_backend_that_is_down_is_skipped(self):
        servers = [self.server(echo_with_name(f"b{i}")) for i in range(3)]
        usher = TcpUsher(self, {"main": ([s.port for s in servers], "")})
        names = set()
        for _ in range(6):
            with usher.connect() as s:
                names.add(read_line(s))
        self.assertEqual(names, {"b0", "b1", "b2"})
        servers[1].close()  # killed mid-test: its port now refuses
        names = set()
        for _ in range(30):
            with usher.connect() as s:
                names.add(read_line(s))
        self.assertEqual(names, {"b0", "b2"})  # every client served: no refused connection seen

    def test_256_mib_arrive_byte_identical_in_little_memory(self):
        for relay in ("auto", "copy", "splice"):
            with self.subTest(relay=relay):
                self.transfer_256_mib(relay)

    def transfer_256_mib(self, relay):
        server = self.server(echo_with_name("bulk"))
        usher = TcpUsher(self, {"main": ([server.port], "")}, listener=f"    pool: main\n    relay: {relay}\n")
        try:
            self.transfer_through(usher, relay)
        except OSError as error:  # what usher said and logged tells a crash from a relay's end
            raise AssertionError(f"{error}; usher exit {usher.process.proc.poll()}: "
                                 f"{usher.process.output()[-4000:]}; log: {usher.log_lines(1, 1.0)}")

    def transfer_through(self, usher, relay):
        total, block = 256 << 20, os.urandom(1 << 20)
        sent_hash = hashlib.sha256()
        with usher.connect(timeout=60) as s:
            self.assertEqual(read_line(s), "bulk")

            def send():
                for i in range(total // len(block)):
                    chunk = block[:8] + i.to_bytes(8, "big") + block[16:]
                    sent_hash.update(chunk)
                    s.sendall(chunk)
                s.shutdown(socket.SHUT_WR)
            sender = threading.Thread(target=send)
            sender.start()
            received, got_hash, buffer = 0, hashlib.sha256(), bytearray(1 << 20)
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                n = s.recv_into(buffer)
                if n == 0:
                    break
                got_hash.update(memoryview(buffer)[:n])
                received += n
            sender.join(timeout=60)
        self.assertEqual(received, total)
        self.assertEqual(got_hash.hexdigest(), sent_hash.hexdigest())
        if not SANITIZED:  # the sanitizers' shadow memory is not usher's
            with open(f"/proc/{usher.process.pid}/status") as f:
                peak = int(re.search(r"VmHWM:\s+(\d+)", f.read()).group(1))
            self.assertLess(peak, 32 * 1024, "peak RSS in KiB")
        usher.settle()
        self.assertEqual(usher.metric(r'usher_tcp_bytes_total\{listener="front",direction="in"\}'), total)
        # auto: both directions came as streams (the echo sends it all back) and turned to splice.
        splices = usher.metric(r'usher_tcp_relay_splices_total\{listener="front"\}')
        self.assertEqual(splices, 2 if relay == "auto" else 0)

    def test_half_close_is_passed_on(self):
        server = self.server(collect_then_answer)
        for relay in ("splice", "copy"):
            usher = TcpUsher(self, {"main": ([server.port], "")}, listener=f"    pool: main\n    relay: {relay}\n")
            with usher.connect() as s:
                s.sendall(b"x" * 100000)
                s.shutdown(socket.SHUT_WR)
                self.assertEqual(read_until_close(s, 5.0), b"got 100000\n")
        line = usher.log_lines(1)[-1]
        self.assertEqual((line["end"], line["bytes_received"], line["bytes_sent"]), ("done", 100000, 11))
        self.assertEqual(line["backend"], f"127.0.0.1:{server.port}")
        self.assertEqual((line["protocol"], line["pool"]), ("tcp", "main"))

    def test_a_backend_reset_is_passed_on_as_a_reset_and_logged(self):
        def reset_after_a_line(conn):
            conn.sendall(b"hello\n")
            read_line(conn)
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        server = self.server(reset_after_a_line)
        usher = TcpUsher(self, {"main": ([server.port], "")})
        with usher.connect() as s:
            self.assertEqual(read_line(s), "hello")
            s.sendall(b"bye\n")
            with self.assertRaises(ConnectionResetError):  # never a clean end of a cut stream
                while s.recv(65536):
                    pass
        line = usher.log_lines(1)[-1]
        self.assertEqual((line["end"], line["failure"]), ("error", "backend ECONNRESET"))

    def test_idle_connections_close_after_tcp_idle(self):
        server = self.server(echo_with_name("quiet"))
        usher = TcpUsher(self, {"main": ([server.port], "")}, top="timeouts: { tcp_idle: 1s }\n")
        with usher.connect(timeout=10) as s:
            self.assertEqual(read_line(s), "quiet")
            started = time.monotonic()
            self.assertEqual(read_until_close(s, 8.0), b"")
            self.assertLess(time.monotonic() - started, 5.0)
        self.assertEqual(usher.log_lines(1)[-1]["end"], "idle")

    def test_max_connections_per_backend(self):
        server = self.server(echo_with_name("one"))
        usher = TcpUsher(self, {"main": ([server.port], "    max_connections: 1\n")})
        with usher.connect() as first:
            self.assertEqual(read_line(first), "one")
            with usher.connect() as second:
                self.assertEqual(read_until_close(second, 5.0), b"")
        usher.settle()
        with usher.connect() as third:  # the place is free again
            self.assertEqual(read_line(third), "one")
        usher.settle()
        self.assertEqual(
            usher.metric(r'usher_tcp_connections_total\{listener="front",end="no_backend"\}'), 1)


class ProxyProtocolTest(unittest.TestCase):
    def reporter(self):
        server = TcpServer(proxy_reporter)
        self.addCleanup(server.close)
        return server

    def test_v2_and_v1_to_backends_carry_the_client_address(self):
        for version in ("v2", "v1"):
            server = self.reporter()
            usher = TcpUsher(self, {"main": ([server.port], f"    proxy_protocol: {version}\n")})
            with usher.connect(source="127.0.0.2") as s:
                port = s.getsockname()[1]
                self.assertEqual(read_line(s), f"{version} 127.0.0.2 {port}")
                s.sendall(b"after the header\n")
                self.assertEqual(read_line(s), "after the header")

    def test_a_trusted_balancer_header_becomes_the_client(self):
        server = self.reporter()
        usher = TcpUsher(self, {"main": ([server.port], "    proxy_protocol: v1\n")},
                         listener="    pool: main\n    proxy_protocol: { accept: [v1, v2], from: [127.0.0.3/32] }\n")
        with usher.connect(source="127.0.0.3") as s:
            s.sendall(b"PROXY TCP4 203.0.113.7 127.0.0.1 4444 5432\r\nhello\n")
            self.assertEqual(read_line(s), "v1 203.0.113.7 4444")
            self.assertEqual(read_line(s), "hello")
        self.assertEqual(usher.log_lines(1)[-1]["client"], "203.0.113.7:4444")

    def test_the_balancers_authority_tlv_is_passed_on(self):
        server = self.reporter()
        usher = TcpUsher(self, {"main": ([server.port], "    proxy_protocol: v2\n")},
                         listener="    pool: main\n    proxy_protocol: { accept: [v2], from: [127.0.0.3/32] }\n")
        name = b"db.example.com"
        block = bytes([203, 0, 113, 7, 127, 0, 0, 1]) + (4444).to_bytes(2, "big") + (5432).to_bytes(2, "big")
        block += b"\x02" + len(name).to_bytes(2, "big") + name
        header = b"\r\n\r\n\x00\r\nQUIT\n\x21\x11" + len(block).to_bytes(2, "big") + block
        with usher.connect(source="127.0.0.3") as s:
            s.sendall(header)
            self.assertEqual(read_line(s), "v2 203.0.113.7 4444 db.example.com")
        # From the trusted balancer, a connection without a header is refused.
        with usher.connect(source="127.0.0.3") as s:
            s.sendall(b"GET / HTTP/1.1\r\n\r\n")
            self.assertEqual(read_until_close(s, 5.0), b"")

    def test_a_header_from_anyone_else_is_refused(self):
        for relay in ("copy", "splice"):
            with self.subTest(relay=relay):
                self.refuse_untrusted_headers(relay)

    def refuse_untrusted_headers(self, relay):
        server = self.reporter()
        usher = TcpUsher(self, {"main": ([server.port], "    proxy_protocol: v1\n")},
                         listener=f"    pool: main\n    relay: {relay}\n    proxy_protocol: {{ from: [127.0.0.3/32] }}\n")
        for header in (b"PROXY TCP4 203.0.113.7 127.0.0.1 4444 5432\r\n",
                       b"\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x0c" + bytes(12)):
            with usher.connect(source="127.0.0.2") as s:
                self.assertEqual(read_line(s).split()[1], "127.0.0.2")  # usher's own header
                s.sendall(header + b"hello\n")
                s.settimeout(5)
                self.assertEqual(read_until_close(s, 5.0), b"")  # the fake one never arrived
        # Anyone else's ordinary bytes pass.
        with usher.connect(source="127.0.0.2") as s:
            read_line(s)
            s.sendall(b"PROX\n")
            self.assertEqual(read_line(s), "PROX")
        usher.settle()
        self.assertEqual(
            usher.metric(r'usher_tcp_connections_total\{listener="front",end="bad_client"\}'), 2)


class ProxyProtocolOnHttpTest(unittest.TestCase):
    """An http listener behind a balancer that sends the PROXY protocol."""

    def test_the_header_names_the_client_and_is_required_from_the_balancer_only(self):
        backend_port, backend = start_backend("b")
        self.addCleanup(backend.stop)
        port, admin = free_port(), free_port()
        config = write_config(
            f"admin: {{ listen: 127.0.0.1:{admin} }}\nlisteners:\n  - listen: 127.0.0.1:{port}\n"
            "    pool: p\n    proxy_protocol: { accept: [v1, v2], from: [127.0.0.3/32] }\n"
            f"pools:\n  - name: p\n    backends: [127.0.0.1:{backend_port}]\n")
        self.addCleanup(os.unlink, config)
        usher = Process([USHER, "run", "-c", config], port=port)
        self.addCleanup(usher.stop)
        request = b"GET /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"

        def send(source, raw):
            with socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(source, 0)) as s:
                s.sendall(raw)
                return read_until_close(s, 5.0)
        v2 = (b"\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x0c" + bytes([198, 51, 100, 4, 127, 0, 0, 1])
              + (6000).to_bytes(2, "big") + (80).to_bytes(2, "big"))
        for header, client in ((b"PROXY TCP4 203.0.113.9 127.0.0.1 5555 80\r\n", b"203.0.113.9"),
                               (v2, b"198.51.100.4")):
            response = send("127.0.0.3", header + request)
            self.assertTrue(response.startswith(b"HTTP/1.1 200"), response[:100])
            self.assertIn(b"X-Forwarded-For: " + client + b"\r\n", response)
        self.assertEqual(send("127.0.0.3", request), b"")  # the balancer must send one
        self.assertTrue(send("127.0.0.2", b"PROXY TCP4 203.0.113.9 127.0.0.1 5555 80\r\n" + request)
                        .startswith(b"HTTP/1.1 400"))  # anyone else's is no HTTP
        with urllib.request.urlopen(f"http://127.0.0.1:{admin}/metrics", timeout=5) as r:
            self.assertIn('usher_listener_refused_connections_total{listener="127.0.0.1:%d",reason="proxy_header"} 1'
                          % port, r.read().decode())


class SniPassthroughTest(unittest.TestCase):
    def test_two_names_reach_two_pools_with_their_own_certificates(self):
        backends = {}
        for name in ("db.example.com", "web.example.com"):
            server, cert, folder = tls_server(name)
            self.addCleanup(shutil.rmtree, folder, True)
            self.addCleanup(server.close)
            backends[name] = (server, cert)
        listener = ("    routes:\n      - match: { sni: db.example.com }\n        pool: db\n"
                    "      - match: { sni: \"*.example.com\" }\n        pool: web\n")
        usher = TcpUsher(self, {"db": ([backends["db.example.com"][0].port], ""),
                                "web": ([backends["web.example.com"][0].port], "")}, listener=listener)
        for name in ("db.example.com", "web.example.com"):
            context = ssl.create_default_context(cafile=backends[name][1])
            with context.wrap_socket(usher.connect(), server_hostname=name) as tls:
                subject = dict(item[0] for item in tls.getpeercert()["subject"])
                self.assertEqual(subject["commonName"], name)
                self.assertEqual(read_line(tls), name)
        lines = usher.log_lines(2)
        self.assertEqual([(l["sni"], l["pool"]) for l in lines],
                         [("db.example.com", "db"), ("web.example.com", "web")])
        # A name no route takes, and bytes that are no TLS at all, are closed.
        context = ssl.create_default_context()
        with self.assertRaises((ssl.SSLError, OSError)):
            with context.wrap_socket(usher.connect(), server_hostname="other.test"):
                pass
        with usher.connect() as s:
            s.sendall(b"GET / HTTP/1.1\r\n\r\n")
            self.assertEqual(read_until_close(s, 5.0), b"")
        usher.settle()
        self.assertEqual(usher.metric(r'usher_tcp_connections_total\{listener="front",end="no_route"\}'), 2)


class TcpConfigTest(unittest.TestCase):
    def check(self, text):
        path = write_config(text)
        self.addCleanup(os.unlink, path)
        return subprocess.run([USHER, "check", "-c", path], capture_output=True, text=True)

    def test_keys_that_mean_nothing_to_tcp_are_refused(self):
        base = "pools:\n  - name: p\n    backends: [127.0.0.1:9]\n{pool}listeners:\n  - listen: 127.0.0.1:1\n    protocol: tcp\n    pool: p\n{listener}"
        for pool, listener, message in [
                ("", "    forwarded: true\n", "forwarded applies to http listeners only"),
                ("", "    session_idle: 5s\n", "session_idle applies to udp listeners only"),
                ("    retries: { attempts: 2 }\n", "", "retries applies to HTTP only"),
                ("    sticky: { cookie: s }\n", "", "sticky applies to HTTP only"),
                ("    hash_key: header:x\n    balance: hash\n", "", "hashes the client address only"),
                ("    proxy_protocol: v3\n", "", "proxy_protocol must be v1, v2 or off"),
                ("", "    relay: zerocopy\n", "relay must be auto, copy or splice, not 'zerocopy'")]:
            result = self.check(base.format(pool=pool, listener=listener))
            self.assertNotEqual(result.returncode, 0, pool + listener)
            self.assertIn(message, result.stderr + result.stdout)
        result = self.check("pools:\n  - name: p\n    backends: [127.0.0.1:9]\n    proxy_protocol: v2\n"
                            "listeners:\n  - listen: 127.0.0.1:1\n    pool: p\n")
        self.assertIn("proxy_protocol applies to pools behind tcp and udp listeners", result.stderr + result.stdout)
        ok = self.check(base.format(pool="    proxy_protocol: v2\n    balance: least-connections\n",
                                    listener="    proxy_protocol: { accept: [v2], from: [10.0.0.0/8] }\n"))
        self.assertEqual(ok.returncode, 0, ok.stderr)


if __name__ == "__main__":
    unittest.main()
