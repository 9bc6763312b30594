"""HTTP/2 toward clients, seen with real peers: curl, h2load and python h2 speaking h2c (prior
knowledge) and h2 (ALPN) to usher, HTTP/1.1 backends behind it. Answers arrive whole (a 5 MB
body byte for byte, HEAD, 204 and 304 without a body, trailers of a chunked answer as a trailing
HEADERS frame); routing, sticky cookies, header edits, X-Forwarded-* and retries behave as over
HTTP/1.1; request bodies arrive byte for byte, with Expect: 100-continue, and a backend that reads
slowly holds the client's window instead of growing usher; the access log and the metrics name
the protocol; a listener that does not offer HTTP/2 keeps HTTP/1.1; h2load's 100 000 requests
over both transports all succeed."""
import hashlib
import http.client
import json
import os
import random
import re
import shutil
import socket
import subprocess
import tempfile
import time
import unittest

from h2peers import H2, TIMEOUT, InlineBackend
from harness import USHER, Process, free_port, rss_kib, start_backend, tls_certificate, wait_port, write_config

PATTERN = bytes(range(256)) * 4096  # backend.py's /big body, repeated
EMPTY_SHA = hashlib.sha256(b"").hexdigest()


def h1(port):
    return http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)


def curl(*args, timeout=20):
    """curl's exit code, its -w output, and its stderr."""
    done = subprocess.run(["curl", "-sS", "--cacert", tls_certificate()[0], *args], capture_output=True,
                          timeout=timeout)
    return done.returncode, done.stdout.decode(errors="replace"), done.stderr.decode(errors="replace")


def echoed(body):
    """The request head backend.py's /echo saw: {lowercased name: [values]}."""
    fields = {}
    for line in body.decode().split("\r\n")[1:]:
        if ": " in line:
            name, value = line.split(": ", 1)
            fields.setdefault(name.lower(), []).append(value)
    return fields


def route(match, pool, extra=""):
    return f"      - match: {match}\n        pool: {pool}\n{extra}"


def routes():
    strip = "        strip_prefix: /{}\n".format
    return ("    routes:\n"
            + route('{ host: "api.example" }', "a")
            + route("{ path_prefix: /b/ }", "b", strip("b"))
            + route('{ headers: [{ name: X-Canary, value: "1" }] }', "c")
            + route('{ cookies: [{ name: beta, value: "yes" }] }', "c")
            + route('{ query: [{ name: debug, value: "1" }] }', "b")
            + route("{ path_prefix: /edit/ }", "a", strip("edit")
                    + '        request_headers: { add: { X-Client: "ip=${client_ip}" }, remove: [X-Debug] }\n'
                    + '        response_headers: { set: { X-Served-By: "${backend}" } }\n')
            + route("{ path_prefix: /sticky/ }", "sticky", strip("sticky"))
            + route("{ path_prefix: /retry/ }", "pair", strip("retry"))
            + route("{ path_prefix: /trailers }", "trailers")
            + route("{ path_prefix: /held/ }", "held", strip("held"))
            + "      - pool: pair\n")


class Http2(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.folder = tempfile.mkdtemp(prefix="usher-test-h2-")
        cls.log = os.path.join(cls.folder, "access.log")
        cls.backends = {name: start_backend(name) for name in ("a", "b", "c")}
        cls.trailers, cls.held = InlineBackend("trailers"), InlineBackend("held")
        cls.port, cls.tls_port, cls.h1_tls_port, cls.off_port, cls.admin = (free_port() for _ in range(5))
        cert, key = tls_certificate()
        tls = f"{{ certificates: [{{ cert: {cert}, key: {key} }}]"
        pool = "  - name: {}\n    backends: [{}]\n{}".format
        addr = {n: f"127.0.0.1:{p}" for n, (p, _) in cls.backends.items()}
        config = (f"workers: 2\nadmin: {{ listen: 127.0.0.1:{cls.admin} }}\naccess_log: {cls.log}\n"
                  f"listeners:\n  - name: plain\n    listen: 127.0.0.1:{cls.port}\n{routes()}"
                  f"  - name: secure\n    listen: 127.0.0.1:{cls.tls_port}\n"
                  f"    tls: {tls}, alpn: [h2, http/1.1] }}\n{routes()}"
                  f"  - name: h1tls\n    listen: 127.0.0.1:{cls.h1_tls_port}\n    tls: {tls} }}\n    pool: pair\n"
                  f"  - name: off\n    listen: 127.0.0.1:{cls.off_port}\n    http2: false\n    pool: pair\n"
                  "pools:\n" + pool("a", addr["a"], "") + pool("b", addr["b"], "") + pool("c", addr["c"], "")
                  + pool("pair", f"{addr['a']}, {addr['b']}", "")
                  + pool("sticky", ", ".join(addr.values()), "    sticky: { cookie: SERVERID }\n")
                  + pool("trailers", f"127.0.0.1:{cls.trailers.port}", "")
                  + pool("held", f"127.0.0.1:{cls.held.port}", ""))
        cls.config = write_config(config)
        cls.usher = Process([USHER, "run", "-c", cls.config], port=cls.port)
        for port in (cls.tls_port, cls.h1_tls_port, cls.off_port, cls.admin):
            wait_port(port)

    @classmethod
    def tearDownClass(cls):
        cls.usher.stop()
        for _, b in cls.backends.values():
            b.stop()
        cls.trailers.stop()
        cls.held.stop()
        os.unlink(cls.config)
        shutil.rmtree(cls.folder, True)

    def h2(self, port, tls=False):
        client = H2(port, tls)
        self.addCleanup(client.close)
        return client

    def clients(self):
        """A python h2 client on each HTTP/2 transport: h2c, then h2 over TLS."""
        return [self.h2(self.port), self.h2(self.tls_port, tls=True)]

    def test_curl_gets_whole_answers_over_h2_and_h2c(self):
        big = 5_000_000
        expected = hashlib.sha256((PATTERN * 5)[:big]).hexdigest()
        for url, flag in ((f"https://127.0.0.1:{self.tls_port}", "--http2"),
                          (f"http://127.0.0.1:{self.port}", "--http2-prior-knowledge")):
            out = os.path.join(self.folder, "big")
            code, written, err = curl(flag, "-o", out, "-w", "%{http_version} %{http_code} %{size_download}",
                                      f"{url}/big?bytes={big}")
            self.assertEqual((code, written), (0, f"2 200 {big}"), err)
            with open(out, "rb") as f:
                self.assertEqual(hashlib.sha256(f.read()).hexdigest(), expected, url)
            code, written, err = curl(flag, "-D", "-", "-w", "|%{http_version}",
                                      f"{url}/edit/set-cookie?name=k&value=v")
            head, _, tail = written.partition("\r\n\r\n")
            self.assertEqual((code, tail), (0, "a|2"), err)
            self.assertTrue(head.startswith("HTTP/2 200"), head)
            self.assertIn("\r\nset-cookie: k=v; Path=/", head)
            self.assertIn(f"\r\nx-served-by: 127.0.0.1:{self.backends['a'][0]}", head)
            self.assertIn("\r\ncontent-length: 1", head)

    def test_head_204_and_304_come_without_a_body(self):
        for client in self.clients():
            head = client.request("HEAD", "/big?bytes=1000")
            self.assertEqual((head.status, head.header("content-length"), head.body), (200, "1000", b""))
            for code in (204, 304):
                r = client.request("GET", f"/status?code={code}")
                self.assertEqual((r.status, r.body, r.data_frames, r.reset), (code, b"", 0, None))

    def test_a_listener_without_h2_keeps_http1(self):
        code, written, err = curl("--http2", "-w", "|%{http_version}", f"https://127.0.0.1:{self.h1_tls_port}/")
        self.assertEqual(code, 0, err)
        self.assertRegex(written, r"^[ab]\|1\.1$")
        code, written, err = curl("--http2-prior-knowledge", "-w", "|%{http_code}",
                                  f"http://127.0.0.1:{self.off_port}/")
        self.assertTrue(code != 0 or not written.endswith("|200"), (code, written, err))
        with socket.create_connection(("127.0.0.1", self.off_port), timeout=TIMEOUT) as s:
            s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
            answer = s.recv(100)
        # HTTP/1.1's parser refuses it: an error status (505 names the version) or a close.
        self.assertRegex(answer, rb"(?s)^(HTTP/1\.1 (4\d\d|505) .*)?$")
        conn = h1(self.off_port)
        conn.request("GET", "/")
        self.assertIn(conn.getresponse().read(), (b"a", b"b"))
        conn.close()
        cert, key = tls_certificate()
        bad = write_config("listeners:\n  - name: web\n    listen: 127.0.0.1:1\n    pool: web\n    http2: false\n"
                           f"    tls: {{ certificates: [{{ cert: {cert}, key: {key} }}], alpn: [h2] }}\n"
                           "pools:\n  - name: web\n    backends: [127.0.0.1:2]\n")
        try:
            done = subprocess.run([USHER, "check", "-c", bad], capture_output=True, timeout=10)
        finally:
            os.unlink(bad)
        self.assertNotEqual(done.returncode, 0)
        self.assertIn("tls.alpn offers h2 but http2 is off", (done.stdout + done.stderr).decode())

    def test_routes_match_as_over_http1(self):
        # (path, HTTP/1.1 fields, HTTP/2 :authority and fields, the pool that answers)
        cases = [("/", {"Host": "api.example"}, "api.example", [], "a"),
                 ("/b/x", {}, None, [], "b"),
                 ("/", {"X-Canary": "1"}, None, [("x-canary", "1")], "c"),
                 ("/", {"Cookie": "theme=dark; beta=yes"}, None,
                  [("cookie", "theme=dark"), ("cookie", "beta=yes")], "c"),
                 ("/x?debug=1", {}, None, [], "b")]
        for path, h1_fields, authority, h2_fields, pool in cases:
            conn = h1(self.port)
            conn.request("GET", path, headers=h1_fields)
            self.assertEqual(conn.getresponse().read().decode(), pool, (path, h1_fields))
            conn.close()
        for client in self.clients():
            for path, _, authority, h2_fields, pool in cases:
                r = client.request("GET", path, h2_fields, authority=authority)
                self.assertEqual((r.status, r.body.decode()), (200, pool),
                                 (client.scheme, path, authority, h2_fields))

    def test_a_sticky_cookie_set_over_h2_is_honoured(self):
        for client in self.clients():
            first = client.request("GET", "/sticky/")
            cookie = first.header("set-cookie")
            self.assertRegex(cookie or "", r"^SERVERID=[0-9a-f]{16}; ")
            pin = ("cookie", cookie.split(";")[0])
            pinned = {client.request("GET", "/sticky/", [pin]).body for _ in range(20)}
            self.assertEqual(pinned, {first.body})
            spread = {client.request("GET", "/sticky/").body for _ in range(30)}
            self.assertEqual(spread, {b"a", b"b", b"c"})
            echo = client.request("GET", "/sticky/echo", [("cookie", "theme=dark"), pin])
            self.assertEqual(echoed(echo.body)["cookie"], ["theme=dark"])

    def test_header_edits_forwarded_fields_and_joined_cookies(self):
        for client in self.clients():
            r = client.request("GET", "/edit/echo", [("x-debug", "1"), ("cookie", "a=1"), ("cookie", "b=2")])
            fields = echoed(r.body)
            self.assertTrue(r.body.startswith(b"GET /echo HTTP/1.1\r\n"), r.body)
            self.assertNotIn("x-debug", fields)
            self.assertEqual(fields["x-client"], ["ip=127.0.0.1"])
            self.assertEqual(r.header("x-served-by"), f"127.0.0.1:{self.backends['a'][0]}")
            self.assertEqual(fields["cookie"], ["a=1; b=2"])
            self.assertEqual(fields["host"], [client.authority])
            self.assertEqual(fields["x-forwarded-for"], ["127.0.0.1"])
            self.assertEqual(fields["x-forwarded-proto"], [client.scheme])

    def test_request_bodies_arrive_byte_exact(self):
        body = random.Random(7).randbytes(3 << 20)
        answer = b"%d %s" % (len(body), hashlib.sha256(body).hexdigest().encode())
        for client in self.clients():
            for fields in ([("content-length", str(len(body)))], []):  # without: chunked to the backend
                with self.subTest(scheme=client.scheme, fields=fields):
                    r = client.request("POST", "/b/upload", fields, body)
                    self.assertEqual((r.status, r.body), (200, answer))
            with self.subTest(scheme=client.scheme, body="empty"):
                self.assertEqual(client.request("POST", "/b/upload", [], b"").body, b"0 " + EMPTY_SHA.encode())
        path = os.path.join(self.folder, "upload")
        with open(path, "wb") as f:
            f.write(body)
        for url, flag in ((f"https://127.0.0.1:{self.tls_port}", "--http2"),
                          (f"http://127.0.0.1:{self.port}", "--http2-prior-knowledge")):
            # --data-binary sends a content-length; -T - streams stdin with none, DATA until END_STREAM.
            for args in (["--data-binary", f"@{path}"], ["-X", "POST", "-T", "-"]):
                with self.subTest(url=url, curl=args):
                    done = subprocess.run(["curl", "-sS", "--cacert", tls_certificate()[0], flag, *args,
                                           "-w", "|%{http_version}", f"{url}/b/upload"],
                                          input=body, capture_output=True, timeout=20)
                    self.assertEqual(done.stdout, answer + b"|2", done.stderr)

    def test_expect_100_continue(self):
        answer = b"5 " + hashlib.sha256(b"hello").hexdigest().encode()
        for client in self.clients():
            for fields in ([("content-length", "5")], []):
                with self.subTest(scheme=client.scheme, fields=fields):
                    sid = client.start("POST", "/b/upload", fields + [("expect", "100-continue")], end=False)
                    deadline = time.monotonic() + TIMEOUT
                    while not client.streams[sid].interim and time.monotonic() < deadline:
                        client.pump(0.1)
                    r = client.streams[sid]
                    self.assertEqual((r.interim, r.headers), (["100"], []))  # the body is awaited
                    client.send(sid, b"hello")
                    r = client.response(sid)
                    self.assertEqual((r.status, r.body), (200, answer))

    def test_a_backend_that_reads_slowly_holds_the_clients_window(self):
        total = 24 << 20
        body = random.Random(11).randbytes(total)
        answer = b"%d %s" % (total, hashlib.sha256(body).hexdigest().encode())
        # The backend reads nothing of the body: usher may hold the stream's window (256 KiB) and
        # what the loopback sockets to the backend buffer (usher's send buffer grows to at most
        # tcp_wmem's maximum; the backend's receive buffer is pinned), and not more.
        with open("/proc/sys/net/ipv4/tcp_wmem") as f:
            bound = 256 * 1024 + int(f.read().split()[2]) + 4 * InlineBackend.RCVBUF + (1 << 20)
        for fields in ([("content-length", str(total))], []):
            with self.subTest(fields=fields):
                self.held.released.clear()
                self.held.head_read.clear()
                client = self.h2(self.port)
                rss_before = rss_kib(self.usher.pid, "RssAnon:")
                sid = client.start("POST", "/held/upload", fields, end=False)
                self.assertTrue(self.held.head_read.wait(TIMEOUT))
                sent = client.send(sid, body, end=False, stall=1.0)
                grown = rss_kib(self.usher.pid, "RssAnon:") - rss_before
                print(f"\nheld backend: the client sent {sent} of {total} bytes (bound {bound}); "
                      f"usher grew {grown} KiB")
                self.assertLess(sent, bound)
                # AddressSanitizer's quarantine keeps freed buffers: memory is measured without it.
                if not os.environ.get("USHER_SANITIZED"):
                    self.assertLess(grown * 1024, 8 << 20)
                self.held.released.set()
                client.send(sid, body[sent:], end=True)
                r = client.response(sid, timeout=30)
                self.assertEqual((r.status, r.body), (200, answer))

    def test_a_backend_reset_before_answering_is_retried(self):
        answer = b"0 " + EMPTY_SHA.encode()
        # Each over one connection, so one worker's round-robin sends half the first tries to a.
        client = self.h2(self.port)
        over_h2 = [client.request("GET", "/retry/upload?reset=a&n=%d" % i) for i in range(6)]
        self.assertEqual([(r.status, r.body) for r in over_h2], [(200, answer)] * 6)
        conn = h1(self.port)
        for i in range(6):
            conn.request("GET", f"/retry/upload?reset=a&n={i}")
            response = conn.getresponse()
            self.assertEqual((response.status, response.read()), (200, answer))
        conn.close()
        lines = self.log_lines(lambda e: "reset=a" in e["path"], 12)
        for protocol in ("HTTP/2", "HTTP/1.1"):
            retried = [e["retries"] for e in lines if e["protocol"] == protocol]
            self.assertEqual(len(retried), 6, lines)
            self.assertGreater(max(retried), 0, f"{protocol}: no request was retried")

    def log_lines(self, keep, count):
        deadline = time.monotonic() + 5
        while True:
            with open(self.log) as f:
                lines = [e for e in map(json.loads, f) if keep(e)]
            if len(lines) >= count or time.monotonic() > deadline:
                return lines
            time.sleep(0.05)

    def metrics(self):
        conn = h1(self.admin)
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode()
        conn.close()
        found = {}
        for name, labels, value in re.findall(r'^(usher_http2?_\w+)\{([^}]*)\} (\S+)$', text, re.M):
            found[(name, labels)] = float(value)
        return found

    def test_access_log_and_metrics_name_the_protocol(self):
        h2_key = ("usher_http_requests_total", 'listener="plain",protocol="HTTP/2"')
        h1_key = ("usher_http_requests_total", 'listener="plain",protocol="HTTP/1.1"')
        conns_key = ("usher_http2_connections_total", 'listener="plain"')
        before = self.metrics()
        client = self.h2(self.port)
        for i in range(7):
            self.assertEqual(client.request("GET", f"/logged-h2?n={i}").status, 200)
        for i in range(3):
            conn = h1(self.port)
            conn.request("GET", f"/logged-h1?n={i}")
            conn.getresponse().read()
            conn.close()
        tls = self.h2(self.tls_port, tls=True)
        self.assertEqual(tls.request("GET", "/logged-tls").status, 200)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:  # a request is counted once its response went out
            after = self.metrics()
            if (after[h2_key] - before[h2_key], after[h1_key] - before[h1_key]) == (7, 3):
                break
            time.sleep(0.05)
        self.assertEqual(after[h2_key] - before[h2_key], 7)
        self.assertEqual(after[h1_key] - before[h1_key], 3)
        self.assertEqual(after[conns_key] - before[conns_key], 1)
        secure = ("usher_http2_connections_total", 'listener="secure"')
        self.assertGreaterEqual(after[secure] - before[secure], 1)
        lines = self.log_lines(lambda e: e["path"].startswith("/logged-"), 11)
        protocols = {e["path"]: e["protocol"] for e in lines}
        self.assertEqual(protocols, {**{f"/logged-h2?n={i}": "HTTP/2" for i in range(7)},
                                     **{f"/logged-h1?n={i}": "HTTP/1.1" for i in range(3)},
                                     "/logged-tls": "HTTP/2"})
        tls_line = [e for e in lines if e["path"] == "/logged-tls"][0]
        self.assertEqual((tls_line["status"], tls_line["tls_version"]), (200, "TLSv1.3"))

    def test_trailers_of_a_chunked_answer_reach_the_client(self):
        for client in self.clients():
            r = client.request("GET", "/trailers", [("te", "trailers")])
            self.assertEqual((r.status, r.body, r.reset), (200, b"hello world", None))
            self.assertIsNone(r.header("transfer-encoding"))
            self.assertEqual(r.trailers, [("x-checksum", "5eb63bbb"), ("x-parts", "2")])


class Load(unittest.TestCase):
    """h2load against usher in front of two nginx backends (Python ones would be the bottleneck)."""

    def start(self, args, port):
        process = Process(args, port=port)
        self.addCleanup(process.stop)

    def test_h2load_over_h2c_and_h2_has_no_failures(self):
        folder = tempfile.mkdtemp(prefix="usher-test-h2load-")
        self.addCleanup(shutil.rmtree, folder, True)
        backends = []
        for name in ("a", "b"):
            port = free_port()
            conf = os.path.join(folder, f"{name}.conf")
            with open(conf, "w") as f:
                f.write(f"daemon off; master_process off; pid {folder}/{name}.pid; error_log stderr crit;\n"
                        "events { worker_connections 1024; }\n"
                        f"http {{ access_log off; keepalive_requests 1000000;\n"
                        f'  server {{ listen 127.0.0.1:{port}; location / {{ return 200 "{name}"; }} }} }}\n')
            self.start(["nginx", "-e", "stderr", "-p", folder, "-c", conf], port)
            backends.append(f"127.0.0.1:{port}")
        port, tls_port = free_port(), free_port()
        cert, key = tls_certificate()
        config = os.path.join(folder, "usher.yaml")
        with open(config, "w") as f:
            f.write(f"workers: 2\nlisteners:\n  - name: plain\n    listen: 127.0.0.1:{port}\n    pool: web\n"
                    f"  - name: secure\n    listen: 127.0.0.1:{tls_port}\n    pool: web\n"
                    f"    tls: {{ certificates: [{{ cert: {cert}, key: {key} }}], alpn: [h2, http/1.1] }}\n"
                    f"pools:\n  - name: web\n    backends: [{', '.join(backends)}]\n")
        self.start([USHER, "run", "-c", config], port)
        wait_port(tls_port)
        for url in (f"http://127.0.0.1:{port}/", f"https://127.0.0.1:{tls_port}/"):
            started = time.monotonic()
            done = subprocess.run(["timeout", "40", "h2load", "-n", "100000", "-c", "50", "-m", "20", url],
                                  capture_output=True, timeout=60)
            out = done.stdout.decode()
            print(f"\nh2load {url}: {time.monotonic() - started:.1f} s")
            self.assertEqual(done.returncode, 0, out + done.stderr.decode())
            self.assertIn("requests: 100000 total, 100000 started, 100000 done, 100000 succeeded, "
                          "0 failed, 0 errored, 0 timeout", out)
            self.assertIn("status codes: 100000 2xx,", out)
            if url.startswith("https"):
                self.assertIn("Application protocol: h2", out)


if __name__ == "__main__":
    unittest.main()
