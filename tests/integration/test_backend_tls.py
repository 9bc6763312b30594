"""TLS to backends: a backend whose certificate a CA made here signs, verified by that CA (by
name with sni, else by IP address); a wrong CA or a wrong name is a 502 with a log line that
says why; verify: false; sessions resumed on new connections; health checks over TLS; `usher
check` and a reload on a CA file that cannot be loaded."""
import http.client
import http.server
import os
import re
import shutil
import signal
import ssl
import subprocess
import tempfile
import threading
import time
import unittest

from harness import USHER, Process, free_port, write_config


def openssl(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def make_ca(folder, name):
    """A self-signed CA: (cert, key) paths."""
    cert, key = os.path.join(folder, name + ".pem"), os.path.join(folder, name + ".key")
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", key, "-out", cert, "-days", "2", "-subj", f"/CN={name}")
    return cert, key


def make_signed(folder, name, ca, alt_names):
    """A certificate for `name` signed by `ca`, with the given subjectAltName: (cert, key)."""
    key, csr, cert, ext = (os.path.join(folder, name + s) for s in (".key", ".csr", ".pem", ".ext"))
    with open(ext, "w") as f:
        f.write(f"subjectAltName={alt_names}\n")
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key,
            "-out", csr, "-subj", f"/CN={name}")
    openssl("x509", "-req", "-in", csr, "-CA", ca[0], "-CAkey", ca[1], "-CAcreateserial", "-out", cert,
            "-days", "2", "-extfile", ext)
    return cert, key


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        body = b"tls-backend " + self.path.encode()
        with self.server.lock:
            self.server.paths.append(self.path)
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        if self.server.close_each:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class TlsBackend(http.server.ThreadingHTTPServer):
    """HTTPS on loopback that counts handshakes, resumed ones among them."""
    daemon_threads = True

    def __init__(self, cert, close_each=False, client_ca=None):
        super().__init__(("127.0.0.1", 0), Handler)
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(*cert)
        if client_ca:
            self.context.load_verify_locations(client_ca)
            self.context.verify_mode = ssl.CERT_REQUIRED
        self.close_each = close_each
        self.lock = threading.Lock()
        self.paths, self.handshakes, self.resumed, self.failed = [], 0, 0, 0
        self.port = self.server_address[1]
        threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True).start()

    def finish_request(self, request, client_address):
        try:
            tls = self.context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            with self.lock:
                self.failed += 1
            return
        with self.lock:
            self.handshakes += 1
            self.resumed += tls.session_reused
        try:
            self.RequestHandlerClass(tls, client_address, self)
        finally:
            tls.close()

    def stop(self):
        self.shutdown()
        self.server_close()


def get(port, path="/"):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", path)
    response = conn.getresponse()
    body = response.read()
    conn.close()
    return response.status, body


class BackendTls(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.folder = tempfile.mkdtemp()
        cls.ca = make_ca(cls.folder, "backend-ca")
        cls.other_ca = make_ca(cls.folder, "other-ca")
        cls.cert = make_signed(cls.folder, "backend.test", cls.ca, "DNS:backend.test,IP:127.0.0.1")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.folder)

    def setUp(self):
        self.backend = None
        self.usher = None

    def tearDown(self):
        if self.usher:
            self.usher.stop()
        if self.backend:
            self.backend.stop()

    def start(self, tls, pool_extra="", close_each=False, client_ca=None):
        """A TLS backend and usher in front of it, its pool's tls block given inline."""
        self.backend = TlsBackend(self.cert, close_each=close_each, client_ca=client_ca)
        port = free_port()
        self.config = os.path.join(self.folder, f"usher-{port}.yaml")
        with open(self.config, "w") as f:
            f.write(f"workers: 1\nlisteners:\n  - listen: 127.0.0.1:{port}\n    pool: web\n"
                    f"pools:\n  - name: web\n    tls: {tls}\n{pool_extra}"
                    f"    backends: [127.0.0.1:{self.backend.port}]\n")
        self.usher = Process([USHER, "run", "-c", self.config], port=port)
        return port

    def wait_log(self, pattern, timeout=5):
        deadline = time.monotonic() + timeout
        while not re.search(pattern, self.usher.output()) and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.usher.output()

    def test_a_backend_verified_by_its_ca_and_name_serves(self):
        port = self.start(f"{{ ca: {self.ca[0]}, sni: backend.test }}")
        self.assertEqual(get(port, "/a"), (200, b"tls-backend /a"))
        self.assertEqual(self.backend.handshakes, 1)

    def test_without_sni_the_certificate_must_name_the_backend_ip(self):
        port = self.start(f"{{ ca: {self.ca[0]} }}")
        self.assertEqual(get(port)[0], 200)

    def test_a_wrong_ca_is_a_502_and_the_log_says_why(self):
        port = self.start(f"{{ ca: {self.other_ca[0]}, sni: backend.test }}")
        self.assertEqual(get(port)[0], 502)
        output = self.wait_log("handshake failed")
        self.assertRegex(output, r"upstream tls: pool=web backend=127\.0\.0\.1:\d+ handshake failed: "
                                 r"certificate verification failed: unable to get local issuer certificate")
        self.assertEqual(self.backend.paths, [])

    def test_verify_false_accepts_any_certificate(self):
        port = self.start(f"{{ verify: false, ca: {self.other_ca[0]}, sni: backend.test }}")
        self.assertEqual(get(port)[0], 200)

    def test_a_name_the_certificate_lacks_is_a_502(self):
        port = self.start(f"{{ ca: {self.ca[0]}, sni: other.test }}")
        self.assertEqual(get(port)[0], 502)
        self.assertRegex(self.wait_log("handshake failed"),
                         r"handshake failed: certificate verification failed: hostname mismatch")

    def test_the_system_store_does_not_trust_a_private_ca(self):
        port = self.start("{}")
        self.assertEqual(get(port)[0], 502)

    def test_sessions_are_resumed_on_new_connections(self):
        port = self.start(f"{{ ca: {self.ca[0]}, sni: backend.test }}", close_each=True)
        for _ in range(4):
            self.assertEqual(get(port)[0], 200)
        self.assertEqual(self.backend.handshakes, 4)
        self.assertEqual(self.backend.resumed, 3)

    def test_kept_alive_tls_connections_are_reused(self):
        port = self.start(f"{{ ca: {self.ca[0]}, sni: backend.test }}")
        for i in range(5):
            self.assertEqual(get(port, f"/{i}"), (200, f"tls-backend /{i}".encode()))
        self.assertEqual(self.backend.handshakes, 1)

    def test_a_client_certificate_is_presented(self):
        client_ca = make_ca(self.folder, "usher-clients")
        client = make_signed(self.folder, "usher-client", client_ca, "DNS:usher.test")
        port = self.start(f"{{ ca: {self.ca[0]}, sni: backend.test, cert: {client[0]}, key: {client[1]} }}",
                          client_ca=client_ca[0])
        self.assertEqual(get(port)[0], 200)

    def test_health_checks_speak_tls(self):
        port = self.start(f"{{ ca: {self.ca[0]}, sni: backend.test }}",
                          "    health: { type: http, path: /health, interval: 200ms, rise: 1, fall: 1 }\n")
        deadline = time.monotonic() + 5
        while self.backend.paths.count("/health") < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertGreaterEqual(self.backend.paths.count("/health"), 3)
        self.assertEqual(get(port)[0], 200)
        self.assertNotIn("DOWN", self.usher.output())

    def test_tcp_health_checks_do_the_handshake(self):
        port = self.start(f"{{ ca: {self.ca[0]}, sni: backend.test }}",
                          "    health: { type: tcp, interval: 200ms, rise: 1, fall: 1 }\n")
        deadline = time.monotonic() + 5
        while self.backend.handshakes < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertGreaterEqual(self.backend.handshakes, 3)
        self.assertEqual(self.backend.failed, 0)
        self.assertEqual(get(port)[0], 200)

    def test_health_checks_of_a_wrong_ca_mark_the_backend_down(self):
        port = self.start(f"{{ ca: {self.other_ca[0]}, sni: backend.test }}",
                          "    health: { type: http, path: /health, interval: 200ms, rise: 1, fall: 1 }\n")
        self.assertRegex(self.wait_log(r"UP -> DOWN"), r"UP -> DOWN .*tls: certificate verification failed")
        self.assertEqual(get(port)[0], 503)

    def test_a_reload_with_an_unreadable_ca_is_refused(self):
        port = self.start(f"{{ ca: {self.ca[0]}, sni: backend.test }}")
        with open(self.config) as f:
            text = f.read()
        with open(self.config, "w") as f:
            f.write(text.replace(self.ca[0], os.path.join(self.folder, "missing-ca.pem")))
        self.usher.signal(signal.SIGHUP)
        self.assertRegex(self.wait_log("reload refused"), r"reload refused: .*:\d+:\d+: cannot load ca ")
        self.assertEqual(get(port)[0], 200)


class Check(unittest.TestCase):
    def setUp(self):
        self.folder = tempfile.mkdtemp()

    def tearDown(self):
        shutil.rmtree(self.folder)

    def check(self, tls):
        path = os.path.join(self.folder, "usher.yaml")
        with open(path, "w") as f:
            f.write("listeners:\n  - listen: 127.0.0.1:1\n    pool: p\n"
                    f"pools:\n  - name: p\n    backends: [127.0.0.1:2]\n    tls: {tls}\n")
        done = subprocess.run([USHER, "check", "-c", path], capture_output=True, text=True, timeout=30)
        return path, done.returncode, done.stdout + done.stderr

    def test_an_unreadable_ca_is_an_error_at_its_position(self):
        path, code, output = self.check("{ ca: missing.pem }")
        self.assertEqual(code, 1, output)
        self.assertRegex(output, re.escape(path) + r":7:\d+: cannot load ca .*missing\.pem")

    def test_a_relative_ca_is_read_from_the_configuration_folder(self):
        make_ca(self.folder, "here")
        path, code, output = self.check("{ ca: here.pem, sni: backend.test }")
        self.assertEqual(code, 0, output)

    def test_unknown_keys_and_a_lone_cert_are_errors(self):
        path, code, output = self.check("{ verify: yes, cafile: x.pem, cert: c.pem }")
        self.assertEqual(code, 1, output)
        self.assertIn("cafile", output)
        self.assertIn("verify must be true or false", output)
        self.assertIn("needs both 'cert' and 'key'", output)


if __name__ == "__main__":
    unittest.main()
