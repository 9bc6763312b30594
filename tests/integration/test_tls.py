"""HTTPS termination: certificates made by `openssl req` here, chosen by SNI; old protocol
versions refused; plain HTTP on the TLS port answered 400; certificates swapped by a reload
while clients connect; `usher check` on certificates; quick mode's --tls-cert."""
import http.client
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import unittest

from harness import USHER, Process, free_port, start_backend, wait_port, write_config


def make_certificate(folder, name, days=30, curve=True):
    """A self-signed certificate for `name` and *.`name`; returns (cert, key) paths."""
    cert, key = os.path.join(folder, name + ".pem"), os.path.join(folder, name + ".key")
    algorithm = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"] if curve else ["-newkey", "rsa:2048"]
    subprocess.run(["openssl", "req", "-x509", *algorithm, "-nodes", "-keyout", key, "-out", cert,
                    "-days", str(days), "-subj", f"/CN={name}",
                    "-addext", f"subjectAltName=DNS:{name},DNS:*.{name}"],
                   check=True, capture_output=True)
    return cert, key


def served_subject(port, server_name):
    """The subject of the certificate usher shows for this SNI name (openssl s_client)."""
    args = ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-brief"]
    if server_name:
        args += ["-servername", server_name]
    done = subprocess.run(args, input=b"", capture_output=True, timeout=10)
    text = (done.stdout + done.stderr).decode()
    match = re.search(r"Peer certificate: (.*)", text)
    return match.group(1).strip() if match else text


def https_get(port, path="/", server_name="localhost", context=None, timeout=5):
    context = context or ssl._create_unverified_context()
    conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=timeout, context=context)
    conn.sock = context.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=timeout),
                                    server_hostname=server_name)
    conn.request("GET", path)
    response = conn.getresponse()
    body = response.read()
    conn.close()
    return response.status, body


def wait_metric(admin, name, value, timeout=5):
    """The metric once it reaches value (a worker counts a failed handshake after its alert)."""
    deadline = time.monotonic() + timeout
    while (found := metric(admin, name)) != value and time.monotonic() < deadline:
        time.sleep(0.02)
    return found


def metric(admin, name):
    conn = http.client.HTTPConnection("127.0.0.1", admin, timeout=5)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    conn.close()
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    return None


class Tls(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.folder = tempfile.mkdtemp()
        cls.certs = {n: make_certificate(cls.folder, n) for n in ("default.test", "a.test", "b.test")}
        cls.backend_port, cls.backend = start_backend("app")

    @classmethod
    def tearDownClass(cls):
        cls.backend.stop()
        shutil.rmtree(cls.folder)

    def setUp(self):
        self.port, self.admin = free_port(), free_port()
        self.path = write_config(self.config(("default.test", "a.test", "b.test")))
        self.usher = Process([USHER, "run", "-c", self.path], port=self.port)
        wait_port(self.admin)

    def tearDown(self):
        self.usher.stop()
        os.unlink(self.path)

    def config(self, names, extra="", tls_extra=""):
        certificates = "".join(f"        - {{ cert: {self.certs[n][0]}, key: {self.certs[n][1]} }}\n"
                               for n in names)
        return (f"workers: 2\nadmin: {{ listen: 127.0.0.1:{self.admin} }}\n{extra}"
                f"access_log: {self.folder}/access.log\n"
                f"listeners:\n  - name: web\n    listen: 127.0.0.1:{self.port}\n    pool: app\n"
                f"    tls:\n{tls_extra}      certificates:\n{certificates}"
                f"pools:\n  - name: app\n    backends:\n      - 127.0.0.1:{self.backend_port}\n")

    def failures(self, reason, expected=None):
        name = f'usher_tls_handshake_failures_total{{listener="web",reason="{reason}"}}'
        return metric(self.admin, name) if expected is None else wait_metric(self.admin, name, expected)

    def test_each_name_gets_its_certificate_and_an_unknown_name_the_default(self):
        self.assertIn("CN = a.test", served_subject(self.port, "a.test"))
        self.assertIn("CN = b.test", served_subject(self.port, "www.b.test"))  # by its wildcard
        self.assertIn("CN = default.test", served_subject(self.port, "unknown.example"))
        self.assertIn("CN = default.test", served_subject(self.port, None))
        self.assertIn("CN = a.test", served_subject(self.port, "A.TEST"))  # names ignore case

    def test_requests_are_forwarded_with_the_https_scheme(self):
        cafile = self.certs["a.test"][0]
        context = ssl.create_default_context(cafile=cafile)
        status, body = https_get(self.port, "/echo", server_name="a.test", context=context)
        self.assertEqual(status, 200)
        self.assertIn(b"x-forwarded-proto: https", body.lower())
        self.assertEqual(metric(self.admin, 'usher_tls_handshakes_total{listener="web"}'), 1)
        deadline = time.monotonic() + 5
        entry = None
        while entry is None and time.monotonic() < deadline:
            with open(f"{self.folder}/access.log") as f:
                lines = [json.loads(line) for line in f if '"/echo"' in line]
            entry = lines[-1] if lines else time.sleep(0.05)
        self.assertEqual((entry["tls_version"], entry["sni"]), ("TLSv1.3", "a.test"))
        self.assertTrue(entry["tls_cipher"].startswith("TLS_"), entry)

    def test_keep_alive_requests_and_a_large_body_over_one_connection(self):
        context = ssl._create_unverified_context()
        conn = http.client.HTTPSConnection("127.0.0.1", self.port, timeout=10, context=context)
        for _ in range(20):
            conn.request("GET", "/")
            response = conn.getresponse()
            self.assertEqual((response.status, response.read()), (200, b"app"))
        conn.request("GET", "/big?bytes=3000000")
        response = conn.getresponse()
        self.assertEqual(len(response.read()), 3000000)
        body = os.urandom(1 << 20)
        conn.request("POST", "/upload", body=body)
        self.assertEqual(conn.getresponse().read().split()[0], str(len(body)).encode())
        conn.close()
        self.assertEqual(metric(self.admin, 'usher_tls_handshakes_total{listener="web"}'), 1)

    def test_tls_1_0_and_1_1_are_refused(self):
        for version in (ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1):
            context = ssl._create_unverified_context()
            context.minimum_version = context.maximum_version = version
            context.set_ciphers("DEFAULT:@SECLEVEL=0")
            with self.assertRaises(ssl.SSLError):
                https_get(self.port, context=context)
        self.assertEqual(self.failures("protocol_version", 2), 2)
        context = ssl._create_unverified_context()
        context.minimum_version = context.maximum_version = ssl.TLSVersion.TLSv1_2
        self.assertEqual(https_get(self.port, context=context)[0], 200)

    def test_min_version_1_3_refuses_tls_1_2(self):
        self.usher.stop()
        os.unlink(self.path)
        self.port, self.admin = free_port(), free_port()
        self.path = write_config(self.config(("default.test",), tls_extra='      min_version: "1.3"\n'))
        self.usher = Process([USHER, "run", "-c", self.path], port=self.port)
        wait_port(self.admin)
        context = ssl._create_unverified_context()
        context.maximum_version = ssl.TLSVersion.TLSv1_2
        with self.assertRaises(ssl.SSLError):
            https_get(self.port, context=context)
        self.assertEqual(self.failures("protocol_version", 1), 1)
        self.assertEqual(https_get(self.port)[0], 200)

    def test_plain_http_on_the_tls_port_is_a_clear_400(self):
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            answer = b""
            while chunk := s.recv(4096):
                answer += chunk
        self.assertTrue(answer.startswith(b"HTTP/1.1 400 "), answer)
        self.assertIn(b"plain HTTP request was sent to an HTTPS port", answer)
        self.assertEqual(self.failures("plain_http", 1), 1)

    def test_a_silent_client_is_dropped_at_the_handshake_timeout(self):
        self.usher.stop()
        os.unlink(self.path)
        self.port, self.admin = free_port(), free_port()  # the old ones may linger in TIME_WAIT
        self.path = write_config(self.config(("default.test",), "timeouts: { tls_handshake: 500ms }\n"))
        self.usher = Process([USHER, "run", "-c", self.path], port=self.port)
        wait_port(self.admin)
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            started = time.monotonic()
            self.assertEqual(s.recv(100), b"")
            self.assertLess(time.monotonic() - started, 4)
        self.assertEqual(self.failures("timeout", 1), 1)

    def test_a_reload_swaps_certificates_while_clients_connect(self):
        stop, outcomes, lock = threading.Event(), [], threading.Lock()
        closed_before = self.failures("closed", 1)  # wait_port's connection at the start

        def client():
            while not stop.is_set():
                try:
                    status, _ = https_get(self.port, server_name="a.test")
                    result = status
                except (OSError, ssl.SSLError, http.client.HTTPException) as e:
                    result = repr(e)
                with lock:
                    outcomes.append(result)

        threads = [threading.Thread(target=client) for _ in range(4)]
        for t in threads:
            t.start()
        try:
            time.sleep(0.5)
            for names in (("default.test", "b.test"), ("default.test", "a.test"), ("b.test",)):
                with open(self.path, "w") as f:
                    f.write(self.config(names))
                conn = http.client.HTTPConnection("127.0.0.1", self.admin, timeout=30)
                conn.request("POST", "/api/v1/reload")
                response = conn.getresponse()
                self.assertEqual(response.status, 200, response.read())
                conn.close()
                time.sleep(0.5)
        finally:
            stop.set()
            for t in threads:
                t.join(timeout=30)
        self.assertGreater(len(outcomes), 20)
        self.assertEqual([o for o in outcomes if o != 200][:5], [])
        # The last generation has only b.test: it is the default for every name now.
        self.assertIn("CN = b.test", served_subject(self.port, "a.test"))
        self.assertEqual(self.failures("other"), 0)
        self.assertEqual(self.failures("closed"), closed_before)

    def test_a_reload_with_a_key_that_does_not_match_changes_nothing(self):
        broken = self.config(("a.test",)).replace(self.certs["a.test"][1], self.certs["b.test"][1])
        with open(self.path, "w") as f:
            f.write(broken)
        conn = http.client.HTTPConnection("127.0.0.1", self.admin, timeout=30)
        conn.request("POST", "/api/v1/reload")
        response = conn.getresponse()
        body = json.loads(response.read())
        self.assertEqual(response.status, 400)
        self.assertTrue(any(re.match(re.escape(self.path) + r":\d+:\d+: key .* does not match", p)
                            for p in body["problems"]), body)
        self.assertIn("CN = b.test", served_subject(self.port, "b.test"))


def client_contexts():
    """A client context resumes only sessions it made itself: one for each kind of client."""
    tls13 = ssl._create_unverified_context()
    tls12 = ssl._create_unverified_context()
    tls12.maximum_version = ssl.TLSVersion.TLSv1_2
    tls12.options |= ssl.OP_NO_TICKET
    return {False: tls13, True: tls12}


CLIENTS = client_contexts()


def resumed_session(port, session=None, tls12_without_tickets=False):
    """(whether the handshake resumed `session`, the session to resume next time)."""
    context = CLIENTS[tls12_without_tickets]
    with context.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=5),
                             server_hostname="localhost", session=session) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        while s.recv(4096):  # TLS 1.3 tickets arrive with the first records read
            pass
        return s.session_reused, s.session


def make_client_ca(folder):
    """A CA and a client certificate it signed: (ca.pem, (client.pem, client.key))."""
    ca, ca_key = make_certificate(folder, "clients-ca.test")
    key, csr, cert = (os.path.join(folder, n) for n in ("client.key", "client.csr", "client.pem"))
    subprocess.run(["openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", key, "-out", csr, "-subj", "/CN=client one"], check=True, capture_output=True)
    subprocess.run(["openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
                    "-out", cert, "-days", "2"], check=True, capture_output=True)
    return ca, (cert, key)


class Sessions(unittest.TestCase):
    """Resumption: tickets whose keys come from a shared key file and rotate, and the session
    cache for TLS 1.2 clients without tickets."""

    @classmethod
    def setUpClass(cls):
        cls.folder = tempfile.mkdtemp()
        cls.cert = make_certificate(cls.folder, "site.test")
        cls.backend_port, cls.backend = start_backend("app")
        cls.keys = []
        for name in ("shared.key", "other.key"):
            path = os.path.join(cls.folder, name)
            subprocess.run(["openssl", "rand", "-out", path, "48"], check=True)
            cls.keys.append(path)
        cls.processes, cls.paths = [], []

    @classmethod
    def tearDownClass(cls):
        for p in cls.processes:
            p.stop()
        cls.backend.stop()
        for path in cls.paths:
            os.unlink(path)
        shutil.rmtree(cls.folder)

    def start(self, tickets):
        port, admin = free_port(), free_port()
        path = write_config(
            f"workers: 1\nadmin: {{ listen: 127.0.0.1:{admin} }}\n"
            f"listeners:\n  - listen: 127.0.0.1:{port}\n    pool: app\n    tls:\n"
            f"      certificates: [{{ cert: {self.cert[0]}, key: {self.cert[1]} }}]\n"
            f"      session_tickets: {tickets}\n"
            f"pools:\n  - name: app\n    backends: [127.0.0.1:{self.backend_port}]\n")
        self.paths.append(path)
        self.processes.append(Process([USHER, "run", "-c", path], port=port))
        wait_port(admin)
        return port, admin

    def test_an_usher_with_the_same_key_file_resumes_the_other_ones_sessions(self):
        first = self.start(f"{{ key_file: {self.keys[0]} }}")[0]
        second = self.start(f"{{ key_file: {self.keys[0]} }}")[0]
        stranger = self.start(f"{{ key_file: {self.keys[1]} }}")[0]
        reused, session = resumed_session(first)
        self.assertFalse(reused)
        self.assertTrue(resumed_session(first, session)[0])
        self.assertTrue(resumed_session(second, session)[0])
        self.assertFalse(resumed_session(stranger, session)[0])

    def test_ticket_keys_rotate_without_a_reload(self):
        port, admin = self.start(f"{{ key_file: {self.keys[0]}, rotate: 2s }}")
        _, session = resumed_session(port)
        self.assertTrue(resumed_session(port, session)[0])  # its key is current or previous
        time.sleep(4.2)  # two periods on, the key has left the ring
        self.assertFalse(resumed_session(port, session)[0])
        self.assertEqual(metric(admin, "usher_config_generation"), 1)

    def test_tls_1_2_clients_without_tickets_resume_from_the_session_cache(self):
        port = self.start("{ rotate: 1h }")[0]
        _, session = resumed_session(port, tls12_without_tickets=True)
        self.assertTrue(resumed_session(port, session, tls12_without_tickets=True)[0])


class ClientAuth(unittest.TestCase):
    def setUp(self):
        self.folder = tempfile.mkdtemp()
        self.cert = make_certificate(self.folder, "site.test", days=30)
        self.ca, self.client = make_client_ca(self.folder)
        self.backend_port, self.backend = start_backend("app")
        self.usher, self.path = None, None

    def tearDown(self):
        if self.usher:
            self.usher.stop()
            os.unlink(self.path)
        self.backend.stop()
        shutil.rmtree(self.folder)

    def start(self, required):
        self.port, self.admin = free_port(), free_port()
        self.path = write_config(
            f"admin: {{ listen: 127.0.0.1:{self.admin} }}\n"
            f"listeners:\n  - name: mtls\n    listen: 127.0.0.1:{self.port}\n    tls:\n"
            f"      certificates: [{{ cert: {self.cert[0]}, key: {self.cert[1]} }}]\n"
            f"      client_auth: {{ ca: {self.ca}, required: {required} }}\n"
            f"    routes:\n      - pool: app\n        request_headers:\n"
            f"          set: {{ X-Client-Subject: '${{tls_client_subject}}', X-Tls: '${{tls_version}} ${{sni}}' }}\n"
            f"pools:\n  - name: app\n    backends: [127.0.0.1:{self.backend_port}]\n")
        self.usher = Process([USHER, "run", "-c", self.path], port=self.port)
        wait_port(self.admin)

    def test_a_client_without_a_certificate_is_refused_and_one_with_it_served(self):
        self.start("true")
        with self.assertRaises((ssl.SSLError, ConnectionError)):
            https_get(self.port)
        context = ssl._create_unverified_context()
        context.load_cert_chain(*self.client)
        self.assertEqual(https_get(self.port, context=context), (200, b"app"))
        status, echo = https_get(self.port, "/echo", server_name="mtls.test", context=context)
        self.assertIn(b"x-client-subject: CN=client one\r\n", echo.lower().replace(b"cn=", b"CN="))
        self.assertIn(b"x-tls: tlsv1.3 mtls.test\r\n", echo.lower())
        stranger = make_certificate(self.folder, "stranger.test")
        context = ssl._create_unverified_context()
        context.load_cert_chain(*stranger)
        with self.assertRaises((ssl.SSLError, ConnectionError)):
            https_get(self.port, context=context)

    def test_an_optional_certificate_may_be_left_out(self):
        self.start("false")
        self.assertEqual(https_get(self.port), (200, b"app"))

    def test_certificate_expiry_is_a_metric(self):
        self.start("true")
        seconds = metric(self.admin, f'usher_tls_certificate_expiry_seconds{{listener="mtls",name="{self.cert[0]}"}}')
        self.assertIsNotNone(seconds)
        self.assertLess(abs(seconds - 30 * 86400), 2 * 86400)


def make_ocsp_response(folder):
    """A CA, a certificate it signed for site.test, and a successful OCSP response for it."""
    ca, ca_key = make_certificate(folder, "ocsp-ca.test")
    key, csr, cert = (os.path.join(folder, n) for n in ("site.key", "site.csr", "site.pem"))
    run = lambda *args: subprocess.run(args, check=True, capture_output=True, cwd=folder)
    run("openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key,
        "-out", csr, "-subj", "/CN=site.test")
    run("openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-out", cert,
        "-days", "2")
    serial = run("openssl", "x509", "-in", cert, "-noout", "-serial").stdout.decode().strip().split("=")[1]
    expiry = time.strftime("%y%m%d%H%M%SZ", time.gmtime(time.time() + 2 * 86400))
    with open(os.path.join(folder, "index.txt"), "w") as f:
        f.write(f"V\t{expiry}\t\t{serial}\tunknown\t/CN=site.test\n")
    run("openssl", "ocsp", "-issuer", ca, "-cert", cert, "-reqout", "req.der", "-no_nonce")
    run("openssl", "ocsp", "-index", "index.txt", "-rsigner", ca, "-rkey", ca_key, "-CA", ca, "-reqin", "req.der",
        "-respout", "resp.der", "-ndays", "1")
    return (cert, key), os.path.join(folder, "resp.der")


class Ocsp(unittest.TestCase):
    def test_the_response_is_stapled_and_a_bad_file_is_an_error(self):
        folder = tempfile.mkdtemp()
        backend_port, backend = start_backend("app")
        port = free_port()
        try:
            (cert, key), response = make_ocsp_response(folder)
            path = os.path.join(folder, "usher.yaml")
            with open(path, "w") as f:
                f.write(f"listeners:\n  - listen: 127.0.0.1:{port}\n    pool: app\n    tls:\n"
                        f"      certificates: [{{ cert: {cert}, key: {key}, ocsp: resp.der }}]\n"
                        f"pools:\n  - name: app\n    backends: [127.0.0.1:{backend_port}]\n")
            usher = Process([USHER, "run", "-c", path], port=port)
            try:
                done = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-status"],
                                      input=b"", capture_output=True, timeout=10)
                self.assertIn("OCSP Response Status: successful", done.stdout.decode())
                self.assertIn("Cert Status: good", done.stdout.decode())
            finally:
                usher.stop()
            with open(response, "wb") as f:
                f.write(b"not an OCSP response")
            done = subprocess.run([USHER, "check", "-c", path], capture_output=True, text=True, timeout=30)
            self.assertEqual(done.returncode, 1)
            self.assertRegex(done.stderr, re.escape(path) + r":5:\d+: .*resp\.der is not a successful OCSP response")
        finally:
            backend.stop()
            shutil.rmtree(folder)


class Check(unittest.TestCase):
    def setUp(self):
        self.folder = tempfile.mkdtemp()

    def tearDown(self):
        shutil.rmtree(self.folder)

    def check(self, certificates):
        path = os.path.join(self.folder, "usher.yaml")
        with open(path, "w") as f:
            f.write("listeners:\n  - listen: 127.0.0.1:1\n    pool: p\n    tls:\n      certificates:\n"
                    + "".join(f"        - {{ cert: {c}, key: {k} }}\n" for c, k in certificates)
                    + "pools:\n  - name: p\n    backends: [127.0.0.1:2]\n")
        done = subprocess.run([USHER, "check", "-c", path], capture_output=True, text=True, timeout=30)
        return path, done.returncode, done.stdout + done.stderr

    def test_a_key_that_does_not_match_its_certificate_is_an_error_at_its_line(self):
        a, b = make_certificate(self.folder, "a.test"), make_certificate(self.folder, "b.test")
        path, code, output = self.check([a, (b[0], a[1])])
        self.assertEqual(code, 1, output)
        self.assertRegex(output, re.escape(path) + r":7:\d+: key .*a\.test\.key does not match certificate")

    def test_a_missing_file_and_a_certificate_about_to_expire(self):
        path, code, output = self.check([(os.path.join(self.folder, "none.pem"), "none.key")])
        self.assertEqual(code, 1, output)
        self.assertIn("cannot load certificate", output)
        soon = make_certificate(self.folder, "soon.test", days=3)
        path, code, output = self.check([soon])
        self.assertEqual(code, 0, output)
        self.assertRegex(output, r"warning: .*soon\.test\.pem: the certificate expires in [23] days")

    def test_relative_paths_are_read_from_the_configuration_folder(self):
        make_certificate(self.folder, "rel.test", curve=False)
        path, code, output = self.check([("rel.test.pem", "rel.test.key")])
        self.assertEqual(code, 0, output)

    def test_unknown_and_unsupported_keys_are_refused(self):
        path = os.path.join(self.folder, "usher.yaml")
        with open(path, "w") as f:
            f.write("listeners:\n  - listen: 127.0.0.1:1\n    pool: p\n    tls:\n"
                    "      certificates: [{ cert: a, key: b }]\n      alpn: [h3]\n      min_version: '1.1'\n"
                    "      ocsp: k\n"
                    "pools:\n  - name: p\n    backends: [127.0.0.1:2]\n")
        done = subprocess.run([USHER, "check", "-c", path], capture_output=True, text=True, timeout=30)
        self.assertEqual(done.returncode, 1)
        self.assertIn(":6:14: alpn: unknown protocol 'h3' (available: h2, http/1.1)", done.stderr)
        self.assertIn(":7:20: min_version must be \"1.2\" or \"1.3\"", done.stderr)
        self.assertIn(":8:7: unknown key 'ocsp' in tls", done.stderr)


class QuickMode(unittest.TestCase):
    def test_quick_mode_serves_https(self):
        folder = tempfile.mkdtemp()
        backend_port, backend = start_backend("quick")
        port = free_port()
        try:
            cert, key = make_certificate(folder, "quick.test")
            usher = Process([USHER, "proxy", "--listen", f"127.0.0.1:{port}", "--to",
                             f"127.0.0.1:{backend_port}", "--tls-cert", cert, "--tls-key", key], port=port)
            try:
                done = subprocess.run(["curl", "-s", "--cacert", cert, "--resolve", f"quick.test:{port}:127.0.0.1",
                                       f"https://quick.test:{port}/"], capture_output=True, timeout=10)
                self.assertEqual(done.stdout, b"quick")
            finally:
                usher.stop()
            half = Process([USHER, "proxy", "--listen", f"127.0.0.1:{port}", "--to", f"127.0.0.1:{backend_port}",
                            "--tls-cert", cert])
            self.assertEqual(half.wait(10), 1)
            self.assertIn("needs both --tls-cert and --tls-key", half.output())
        finally:
            backend.stop()
            shutil.rmtree(folder)


if __name__ == "__main__":
    unittest.main()
