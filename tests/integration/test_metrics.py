"""GET /metrics after a known load: exact counters per backend and status class, cumulative
histograms, and the output passes `promtool check metrics`."""
import http.client
import re
import subprocess
import unittest

from harness import free_port, start_backend, start_usher


def get(port, path):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("GET", path)
    response = conn.getresponse()
    body = response.read()
    conn.close()
    return response.status, body


def parse(text):
    """{(name, frozenset(labels)): value} of every sample."""
    samples = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = re.match(r'^([a-z_][a-z0-9_]*)(?:\{(.*)\})? (\S+)$', line)
        assert match, line
        name, labels, value = match.groups()
        pairs = frozenset(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', labels or ""))
        samples[(name, pairs)] = float(value)
    return samples


class Metrics(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.ok = start_backend("ok")
        cls.bad = start_backend("bad", fail=500)
        cls.admin = free_port()
        cls.port, cls.usher = start_usher([cls.ok[0], cls.bad[0]], workers=2,
                                          extra=f"admin: {{ listen: 127.0.0.1:{cls.admin} }}\n")

    @classmethod
    def tearDownClass(cls):
        cls.usher.stop()
        cls.ok[1].stop()
        cls.bad[1].stop()

    def test_counters_after_a_known_load(self):
        statuses = [get(self.port, "/")[0] for _ in range(30)]
        statuses += [get(self.port, "/status?code=404")[0] for _ in range(6)]
        self.assertEqual(sorted(statuses), [200] * 15 + [404] * 6 + [500] * 15)
        status, body = get(self.admin, "/metrics")
        self.assertEqual(status, 200)
        text = body.decode()
        samples = parse(text)
        ok = f"127.0.0.1:{self.ok[0]}"
        bad = f"127.0.0.1:{self.bad[0]}"

        def value(name, **labels):
            return samples[(name, frozenset(labels.items()))]

        # Round-robin over all workers: exactly half of each kind on each backend.
        self.assertEqual(value("usher_backend_requests_total", pool="web", backend=ok, code="2xx"), 15)
        self.assertEqual(value("usher_backend_requests_total", pool="web", backend=ok, code="4xx"), 3)
        self.assertEqual(value("usher_backend_requests_total", pool="web", backend=ok, code="5xx"), 0)
        self.assertEqual(value("usher_backend_requests_total", pool="web", backend=bad, code="5xx"), 15)
        self.assertEqual(value("usher_backend_requests_total", pool="web", backend=bad, code="4xx"), 3)
        self.assertEqual(value("usher_listener_responses_total", listener="web", code="2xx"), 15)
        self.assertEqual(value("usher_listener_responses_total", listener="web", code="4xx"), 6)
        self.assertEqual(value("usher_listener_responses_total", listener="web", code="5xx"), 15)
        self.assertEqual(value("usher_route_responses_total", listener="web", route="default", code="2xx"), 15)
        # 36 clients and the harness's one probe of the port.
        self.assertEqual(value("usher_listener_connections_total", listener="web"), 37)
        self.assertEqual(value("usher_backend_up", pool="web", backend=ok), 1)
        self.assertEqual(value("usher_build_info", version=self.version()), 1)
        self.assertEqual(value("usher_pool_retries_total", pool="web"), 0)

        # Histograms: buckets cumulative, +Inf equal to the count, one observation per response.
        for backend, count in ((ok, 18), (bad, 18)):
            for family in ("usher_backend_first_byte_seconds", "usher_backend_response_seconds"):
                buckets = sorted(
                    ((float(dict(k[1])["le"]), v) for k, v in samples.items()
                     if k[0] == family + "_bucket" and dict(k[1])["backend"] == backend),
                    key=lambda b: b[0])
                values = [v for _, v in buckets]
                self.assertEqual(values, sorted(values), family)
                self.assertEqual(buckets[-1][0], float("inf"))
                self.assertEqual(buckets[-1][1], count)
                self.assertEqual(value(family + "_count", pool="web", backend=backend), count)
                self.assertGreater(value(family + "_sum", pool="web", backend=backend), 0)

        # Connections open now: three held, then none.
        held = [http.client.HTTPConnection("127.0.0.1", self.port, timeout=5) for _ in range(3)]
        for conn in held:
            conn.request("GET", "/")
            conn.getresponse().read()
        gauge = parse(get(self.admin, "/metrics")[1].decode())
        self.assertEqual(gauge[("usher_listener_open_connections", frozenset({("listener", "web")}))], 3)
        for conn in held:
            conn.close()

        lint = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True)
        self.assertEqual(lint.returncode, 0, lint.stdout.decode() + lint.stderr.decode())

    def version(self):
        out = subprocess.run([self.usher.args[0], "--version"], capture_output=True, text=True).stdout
        return out.split()[-1]


if __name__ == "__main__":
    unittest.main()
