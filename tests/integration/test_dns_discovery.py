"""A pool's backends from a DNS name (`discovery: { dns }`), against a DNS server the test runs on
loopback and whose answers it changes: a third address receives traffic within the TTL and a
second; a resolver that fails (SERVFAIL) or is gone leaves the pool its last answer, with no
failed request, and the log says so; an SRV answer brings ports and weights; `usher check` and
a start refuse a name with no answer."""
import http.client
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.request

import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset

from harness import HERE, USHER, Process, free_port
from test_discovery import Load


class DnsServer:
    """UDP DNS on 127.0.0.1: `answers[(name, type)]` is a list of rdata texts with one TTL;
    `servfail` answers SERVFAIL to everything; close() stops answering at all."""

    def __init__(self, ttl=1):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.ttl, self.answers, self.servfail, self.asked = ttl, {}, False, 0
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                data, peer = self.sock.recvfrom(4096)
            except OSError:
                return
            self.asked += 1
            query = dns.message.from_wire(data)
            response = dns.message.make_response(query)
            question = query.question[0]
            key = (question.name.to_text().rstrip("."), dns.rdatatype.to_text(question.rdtype))
            if self.servfail:
                response.set_rcode(dns.rcode.SERVFAIL)
            elif key in self.answers:
                response.answer.append(dns.rrset.from_text_list(
                    question.name, self.ttl, "IN", question.rdtype, self.answers[key]))
            else:
                response.set_rcode(dns.rcode.NXDOMAIN)
            try:
                self.sock.sendto(response.to_wire(), peer)
            except OSError:
                return

    def close(self):
        self.sock.close()


def start_backend_on(host, port, name):
    env = dict(os.environ, BACKEND_HOST=host)
    process = Process([sys.executable, os.path.join(HERE, "backend.py"), str(port), name], env=env)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection((host, port), timeout=1).close()
            return process
        except OSError:
            time.sleep(0.05)
    process.stop()
    raise RuntimeError(f"backend {name} did not listen on {host}:{port}")


class DnsDiscovery(unittest.TestCase):
    def setUp(self):
        self.folder = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.folder, True)
        self.resolver = DnsServer()
        self.addCleanup(self.resolver.close)
        self.port = free_port()

    def write_config(self, discovery, pool_extra="", top=""):
        path = os.path.join(self.folder, "usher.yaml")
        with open(path, "w") as f:
            f.write(f"workers: 2\nresolvers: [127.0.0.1:{self.resolver.port}]\n{top}"
                    f"listeners:\n  - name: web\n    listen: 127.0.0.1:{self.port}\n    pool: web\n"
                    f"pools:\n  - name: web\n    discovery: {discovery}\n{pool_extra}")
        return path

    def start(self, config):
        usher = Process([USHER, "run", "-c", config], port=self.port)
        self.addCleanup(usher.stop)
        return usher

    def backends_on(self, hosts, port):
        for i, host in enumerate(hosts):
            process = start_backend_on(host, port, f"b{i + 2}")
            self.addCleanup(process.stop)

    def wait_until(self, condition, what, timeout=10.0):
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                self.fail(what)
            time.sleep(0.05)

    def test_a_third_address_gets_traffic_within_the_ttl_and_a_second(self):
        port = free_port()
        self.backends_on(["127.0.0.2", "127.0.0.3", "127.0.0.4"], port)
        self.resolver.answers[("web.test", "A")] = ["127.0.0.2", "127.0.0.3"]
        self.start(self.write_config(f"{{ dns: web.test, type: a, port: {port} }}"))
        load = Load(self.port)
        self.addCleanup(load.stop)
        self.wait_until(lambda: load.counts().get("b2", 0) > 20 and load.counts().get("b3", 0) > 20,
                        f"b2 and b3 serve: {load.counts()}")
        self.resolver.answers[("web.test", "A")] = ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
        changed = time.monotonic()
        self.wait_until(lambda: load.counts().get("b4", 0) > 0, f"b4 joins: {load.counts()}",
                        timeout=self.resolver.ttl + 1.5)
        self.assertLess(time.monotonic() - changed, self.resolver.ttl + 1.0 + 0.2)
        load.stop()
        self.assertEqual(load.failures, [])

    def test_a_failing_or_gone_resolver_leaves_the_last_answer(self):
        port = free_port()
        self.backends_on(["127.0.0.2"], port)
        self.resolver.answers[("web.test", "A")] = ["127.0.0.2"]
        admin = free_port()
        usher = self.start(self.write_config(f"{{ dns: web.test, type: a, port: {port} }}",
                                             top=f"admin: {{ listen: 127.0.0.1:{admin} }}\n"))
        load = Load(self.port, clients=2)
        self.addCleanup(load.stop)
        self.resolver.servfail = True
        said = "discovery: dns for pool 'web': "
        self.wait_until(lambda: said in usher.output(), f"the failure is logged: {usher.output()[-1500:]}")
        self.assertIn("; the pool keeps its backends", usher.output())
        with urllib.request.urlopen(f"http://127.0.0.1:{admin}/metrics", timeout=5) as response:
            failures = re.search(r'^usher_discovery_failures_total\{pool="web"\} (\d+)$',
                                 response.read().decode(), re.M)
        self.assertGreaterEqual(int(failures.group(1)), 1)
        self.resolver.close()  # gone: questions now go nowhere
        time.sleep(3)  # several TTLs without an answer
        served = load.counts().get("b2", 0)
        self.wait_until(lambda: load.counts().get("b2", 0) > served + 50, "b2 serves on")
        load.stop()
        self.assertEqual(load.failures, [])

    def test_an_srv_answer_brings_ports_and_weights(self):
        ports = [free_port(), free_port()]
        self.backends_on(["127.0.0.1"], ports[0])
        process = start_backend_on("127.0.0.1", ports[1], "other")
        self.addCleanup(process.stop)
        self.resolver.answers[("_http._tcp.web.test", "SRV")] = [
            f"0 3 {ports[0]} a.web.test.", f"0 1 {ports[1]} b.web.test.", f"1 1 {ports[1]} spare.web.test."]
        self.resolver.answers[("a.web.test", "A")] = ["127.0.0.1"]
        self.resolver.answers[("b.web.test", "A")] = ["127.0.0.1"]
        self.start(self.write_config("{ dns: _http._tcp.web.test, type: srv }",
                                     "    balance: weighted-round-robin\n"))
        counts = {}
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        for _ in range(400):
            connection.request("GET", "/")
            body = connection.getresponse().read().decode()
            counts[body] = counts.get(body, 0) + 1
        connection.close()
        self.assertEqual(counts, {"b2": 300, "other": 100})  # weights 3 and 1; priority 1 unused

    def test_a_name_without_an_answer_is_refused_at_check_and_start(self):
        config = self.write_config("{ dns: nothing.test, type: a, port: 80 }")
        check = subprocess.run([USHER, "check", "-c", config], capture_output=True, text=True, timeout=30)
        self.assertEqual(check.returncode, 1)
        self.assertIn(f"{config}:9:16: dns nothing.test: Domain name not found", check.stderr)
        self.assertIn("a pool starts only with an answer", check.stderr)
        run = subprocess.run([USHER, "run", "-c", config], capture_output=True, text=True, timeout=30)
        self.assertEqual(run.returncode, 1)


if __name__ == "__main__":
    unittest.main()
