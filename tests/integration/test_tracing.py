"""Tracing: W3C Trace Context through usher and spans exported as OTLP/HTTP JSON to a small
collector written here (http.server keeping every POST /v1/traces). Real usher, real backends,
loopback; every wait is bounded."""
import http.client
import http.server
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
import unittest

from harness import USHER, Process, free_port, start_backend, write_config

CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"
SAMPLED_BY_CLIENT = "aaaabbbbccccddddeeeeffff00001111"
TRACEPARENT = re.compile(r"^traceparent: 00-([0-9a-f]{32})-([0-9a-f]{16})-(0[01])\r?$", re.I | re.M)


class Collector:
    """An OTLP/HTTP collector: stores the spans of every JSON export request."""

    def __init__(self):
        spans, lock = [], threading.Lock()
        self.requests = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(handler):
                body = handler.rfile.read(int(handler.headers["Content-Length"]))
                document = json.loads(body)
                with lock:
                    self.requests.append((handler.path, handler.headers["Content-Type"], document))
                    for resource in document["resourceSpans"]:
                        for scope in resource["scopeSpans"]:
                            for span in scope["spans"]:
                                span["_resource"] = resource["resource"]
                                spans.append(span)
                handler.send_response(200)
                handler.send_header("Content-Type", "application/json")
                handler.send_header("Content-Length", "2")
                handler.end_headers()
                handler.wfile.write(b"{}")

            def log_message(handler, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.spans_list, self.lock = spans, lock
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def spans(self):
        with self.lock:
            return list(self.spans_list)

    def wait_for(self, predicate, timeout=5.0):
        """The spans once predicate(spans) holds (the exporter sends at least once a second)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            spans = self.spans()
            if predicate(spans):
                return spans
            time.sleep(0.05)
        return self.spans()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def attributes(span):
    out = {}
    for a in span["attributes"]:
        value = a["value"]
        out[a["key"]] = value.get("stringValue", value.get("intValue"))
    return out


def get(port, path, headers=None, timeout=5):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read().decode(errors="replace")
    finally:
        conn.close()


def metric(admin, name):
    _, body = get(admin, "/metrics")
    for line in body.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def dead_port():
    """A loopback port nobody listens on."""
    return free_port()


class Usher:
    """usher with one listener: /dead/ to a pool whose backend is down, /retry/ to a pool of a
    down backend and a live one (round-robin, two tries), the rest to the live backend."""

    def __init__(self, tracing, backend_port):
        self.port, self.admin = free_port(), free_port()
        self.backend_port = backend_port
        self.dead = dead_port()
        self.path = write_config(self.text(tracing))
        self.process = Process([USHER, "run", "-c", self.path], port=self.port)

    def text(self, tracing):
        return (f"workers: 1\nadmin: {{ listen: 127.0.0.1:{self.admin} }}\n{tracing}\n"
                f"listeners:\n  - name: web\n    listen: 127.0.0.1:{self.port}\n    routes:\n"
                f"      - {{ name: to-dead, match: {{ path_prefix: /dead/ }}, pool: dead }}\n"
                f"      - {{ name: to-retry, match: {{ path_prefix: /retry/ }}, pool: retry, "
                f"strip_prefix: /retry }}\n"
                f"      - {{ name: main, pool: web }}\n"
                f"pools:\n"
                f"  - {{ name: web, backends: [127.0.0.1:{self.backend_port}] }}\n"
                f"  - {{ name: dead, backends: [127.0.0.1:{self.dead}], retries: {{ attempts: 1 }} }}\n"
                f"  - name: retry\n    balance: round-robin\n    retries: {{ attempts: 2, backoff: 1ms }}\n"
                f"    backends: [127.0.0.1:{self.dead}, 127.0.0.1:{self.backend_port}]\n")

    def reload(self, tracing):
        with open(self.path, "w") as f:
            f.write(self.text(tracing))
        before = metric(self.admin, "usher_config_generation")
        self.process.signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while metric(self.admin, "usher_config_generation") == before and time.monotonic() < deadline:
            time.sleep(0.02)
        assert metric(self.admin, "usher_config_generation") == before + 1, self.process.output()

    def stop(self):
        self.process.stop()
        os.unlink(self.path)


def traceparent_sent(echo_body):
    """(trace id, parent id, flags) of the traceparent the backend got; asserts there is one."""
    found = TRACEPARENT.findall(echo_body)
    assert len(found) == 1, echo_body
    return found[0]


class Propagation(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.collector = Collector()
        cls.backend_port, cls.backend = start_backend("a")
        cls.usher = Usher(f"tracing: {{ otlp: http://127.0.0.1:{cls.collector.port}/v1/traces, sample: 1.0 }}",
                          cls.backend_port)

    @classmethod
    def tearDownClass(cls):
        cls.usher.stop()
        cls.backend.stop()
        cls.collector.close()

    def test_the_backend_gets_the_clients_trace_with_usher_s_try_span_as_parent(self):
        status, echo = get(self.usher.port, "/echo", {
            "traceparent": f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01",
            "tracestate": "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"})
        self.assertEqual(status, 200)
        trace_id, parent, flags = traceparent_sent(echo)
        self.assertEqual(trace_id, CLIENT_TRACE)
        self.assertNotEqual(parent, CLIENT_SPAN)
        self.assertEqual(flags, "01")
        self.assertEqual(re.findall(r"^tracestate: (.*?)\r?$", echo, re.I | re.M),
                         ["rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"])

        spans = self.collector.wait_for(
            lambda s: len([x for x in s if x["traceId"] == CLIENT_TRACE]) >= 2)
        mine = [s for s in spans if s["traceId"] == CLIENT_TRACE]
        self.assertEqual(len(mine), 2, mine)
        server = next(s for s in mine if s["kind"] == 2)
        client = next(s for s in mine if s["kind"] == 3)
        self.assertEqual(server["parentSpanId"], CLIENT_SPAN)
        self.assertEqual(client["parentSpanId"], server["spanId"])
        self.assertEqual(client["spanId"], parent)
        self.assertLessEqual(int(server["startTimeUnixNano"]), int(client["startTimeUnixNano"]))
        self.assertLessEqual(int(client["endTimeUnixNano"]), int(server["endTimeUnixNano"]))
        self.assertLess(abs(int(server["startTimeUnixNano"]) / 1e9 - time.time()), 30)
        a = attributes(server)
        self.assertEqual((a["http.request.method"], a["url.path"], a["http.response.status_code"],
                          a["usher.route"], a["usher.pool"]), ("GET", "/echo", "200", "main", "web"))
        b = attributes(client)
        self.assertEqual((b["server.address"], b["server.port"], b["usher.retry"], b["http.response.status_code"]),
                         ("127.0.0.1", str(self.backend_port), "0", "200"))
        self.assertEqual(server["_resource"]["attributes"],
                         [{"key": "service.name", "value": {"stringValue": "usher"}}])
        self.assertEqual(server["status"], {})
        path, content_type, _ = self.collector.requests[0]
        self.assertEqual((path, content_type), ("/v1/traces", "application/json"))

    def test_an_invalid_traceparent_starts_a_new_trace_and_drops_its_tracestate(self):
        status, echo = get(self.usher.port, "/echo", {
            "traceparent": f"00-{CLIENT_TRACE.upper()}-{CLIENT_SPAN}-01", "tracestate": "a=1"})
        self.assertEqual(status, 200)
        trace_id, parent, flags = traceparent_sent(echo)
        self.assertNotIn(trace_id, (CLIENT_TRACE, "0" * 32))
        self.assertEqual(flags, "01")  # sample: 1.0
        self.assertNotRegex(echo, r"(?im)^tracestate:")
        spans = self.collector.wait_for(lambda s: any(x["traceId"] == trace_id for x in s))
        server = [s for s in spans if s["traceId"] == trace_id and s["kind"] == 2]
        self.assertEqual(len(server), 1)
        self.assertNotIn("parentSpanId", server[0])  # a root span

    def test_sample_1_traces_every_request(self):
        traces = set()
        for i in range(20):
            status, echo = get(self.usher.port, f"/echo?n={i}")
            self.assertEqual(status, 200)
            trace_id, _, flags = traceparent_sent(echo)
            self.assertEqual(flags, "01")
            traces.add(trace_id)
        self.assertEqual(len(traces), 20)
        spans = self.collector.wait_for(
            lambda s: len([x for x in s if x["traceId"] in traces]) >= 40)
        by_trace = {}
        for s in spans:
            if s["traceId"] in traces:
                by_trace.setdefault(s["traceId"], []).append(s["kind"])
        self.assertEqual(len(by_trace), 20)
        self.assertTrue(all(sorted(k) == [2, 3] for k in by_trace.values()), by_trace)

    def test_a_client_that_did_not_sample_is_honoured(self):
        trace = "11112222333344445555666677778888"
        status, echo = get(self.usher.port, "/echo", {"traceparent": f"00-{trace}-{CLIENT_SPAN}-00"})
        self.assertEqual(status, 200)
        self.assertEqual(traceparent_sent(echo)[2], "00")
        # Another, later request's spans arriving means this one's would have come by now.
        _, later = get(self.usher.port, "/echo")
        later_trace = traceparent_sent(later)[0]
        spans = self.collector.wait_for(lambda s: any(x["traceId"] == later_trace for x in s))
        self.assertFalse([s for s in spans if s["traceId"] == trace])

    def test_a_retry_is_a_second_client_span(self):
        found = None
        for i in range(4):  # round-robin: one of two consecutive requests meets the dead backend first
            status, echo = get(self.usher.port, "/retry/echo")
            self.assertEqual(status, 200)
            trace_id, parent, _ = traceparent_sent(echo)
            spans = self.collector.wait_for(
                lambda s: len([x for x in s if x["traceId"] == trace_id]) >= 2)
            clients = sorted((s for s in spans if s["traceId"] == trace_id and s["kind"] == 3),
                             key=lambda s: int(attributes(s)["usher.retry"]))
            if len(clients) == 2:
                found = (clients, parent, spans, trace_id)
                break
        self.assertIsNotNone(found, "no request met the dead backend first")
        clients, parent, spans, trace_id = found
        server = next(s for s in spans if s["traceId"] == trace_id and s["kind"] == 2)
        first, second = (attributes(c) for c in clients)
        self.assertEqual((first["usher.retry"], first["error.type"], first["server.port"]),
                         ("0", "connect", str(self.usher.dead)))
        self.assertEqual(clients[0]["status"], {"code": 2})
        self.assertEqual((second["usher.retry"], second["http.response.status_code"], second["server.port"]),
                         ("1", "200", str(self.backend_port)))
        self.assertEqual({c["parentSpanId"] for c in clients}, {server["spanId"]})
        self.assertNotEqual(clients[0]["spanId"], clients[1]["spanId"])
        self.assertEqual(clients[1]["spanId"], parent)  # the backend heard of the try that reached it
        self.assertEqual(attributes(server)["url.path"], "/retry/echo")


class SampleZero(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.collector = Collector()
        cls.backend_port, cls.backend = start_backend("a")
        cls.usher = Usher(f"tracing: {{ otlp: http://127.0.0.1:{cls.collector.port}/v1/traces, sample: 0, slow: 300ms }}",
                          cls.backend_port)

    @classmethod
    def tearDownClass(cls):
        cls.usher.stop()
        cls.backend.stop()
        cls.collector.close()

    def test_only_errors_and_slow_requests_are_exported(self):
        quick = set()
        for _ in range(20):
            status, echo = get(self.usher.port, "/echo")
            self.assertEqual(status, 200)
            trace_id, _, flags = traceparent_sent(echo)
            self.assertEqual(flags, "00")  # propagated, not sampled
            quick.add(trace_id)
        status, _ = get(self.usher.port, "/dead/x")
        self.assertEqual(status, 502)
        status, _ = get(self.usher.port, "/sleep?ms=400")
        self.assertEqual(status, 200)
        spans = self.collector.wait_for(
            lambda s: {attributes(x).get("url.path") for x in s if x["kind"] == 2} >= {"/dead/x", "/sleep"})
        # Only these two (a client-sampled trace of another test aside).
        servers = {attributes(s)["url.path"]: s for s in spans
                   if s["kind"] == 2 and s["traceId"] != SAMPLED_BY_CLIENT}
        self.assertEqual(set(servers), {"/dead/x", "/sleep"})
        self.assertFalse([s for s in spans if s["traceId"] in quick])
        dead = servers["/dead/x"]
        self.assertEqual(attributes(dead)["http.response.status_code"], "502")
        self.assertEqual(dead["status"], {"code": 2})
        tries = [s for s in spans if s["traceId"] == dead["traceId"] and s["kind"] == 3]
        self.assertEqual(len(tries), 1)
        self.assertEqual(attributes(tries[0])["error.type"], "connect")
        self.assertEqual(tries[0]["parentSpanId"], dead["spanId"])

    def test_a_sampled_client_is_traced_whatever_the_ratio(self):
        trace = SAMPLED_BY_CLIENT
        status, echo = get(self.usher.port, "/echo", {"traceparent": f"00-{trace}-{CLIENT_SPAN}-01"})
        self.assertEqual(status, 200)
        self.assertEqual(traceparent_sent(echo)[:1] + traceparent_sent(echo)[2:], (trace, "01"))
        spans = self.collector.wait_for(lambda s: len([x for x in s if x["traceId"] == trace]) >= 2)
        self.assertEqual(sorted(s["kind"] for s in spans if s["traceId"] == trace), [2, 3])


class CollectorTrouble(unittest.TestCase):
    """Requests never wait on the collector: down (its port closed) or silent (it accepts and
    never answers), usher answers at once and counts the spans it drops."""

    def run_load(self, usher, seconds):
        slowest, count, deadline = 0.0, 0, time.monotonic() + seconds
        conn = http.client.HTTPConnection("127.0.0.1", usher.port, timeout=5)
        while time.monotonic() < deadline and count < 20000:
            started = time.monotonic()
            conn.request("GET", "/")
            response = conn.getresponse()
            response.read()
            self.assertEqual(response.status, 200)
            slowest = max(slowest, time.monotonic() - started)
            count += 1
        conn.close()
        return count, slowest

    def check(self, collector_port, seconds):
        backend_port, backend = start_backend("a")
        usher = Usher(f"tracing: {{ otlp: http://127.0.0.1:{collector_port}/v1/traces, sample: 1.0 }}",
                      backend_port)
        try:
            count, slowest = self.run_load(usher, seconds)
            print(f"\n{count} requests, slowest {slowest * 1000:.1f} ms")
            self.assertGreater(count, 500)
            self.assertLess(slowest, 0.5)
            deadline = time.monotonic() + 5
            while metric(usher.admin, "usher_trace_spans_dropped_total") < 2 * count and time.monotonic() < deadline:
                time.sleep(0.1)
            self.assertGreaterEqual(metric(usher.admin, "usher_trace_spans_dropped_total"), 2 * count)
            self.assertGreaterEqual(metric(usher.admin, "usher_trace_export_failures_total"), 1)
            self.assertEqual(metric(usher.admin, "usher_trace_spans_exported_total"), 0)
        finally:
            usher.stop()
            backend.stop()

    def test_a_collector_that_is_down(self):
        self.check(dead_port(), 2.5)

    def test_a_collector_that_never_answers(self):
        silent = socket.socket()
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)  # connections complete in the kernel; nobody reads or answers
        try:
            self.check(silent.getsockname()[1], 3.0)
        finally:
            silent.close()


class Reload(unittest.TestCase):
    def test_a_reload_turns_tracing_on(self):
        collector = Collector()
        backend_port, backend = start_backend("a")
        usher = Usher("", backend_port)
        try:
            client = f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"
            _, echo = get(usher.port, "/echo", {"traceparent": client, "tracestate": "x=1"})
            self.assertEqual(traceparent_sent(echo), (CLIENT_TRACE, CLIENT_SPAN, "01"))  # passed on as is
            self.assertIn("tracestate: x=1", echo)
            usher.reload(f"tracing: {{ otlp: http://127.0.0.1:{collector.port}/v1/traces, sample: 1 }}")
            _, echo = get(usher.port, "/echo", {"traceparent": client})
            trace_id, parent, _ = traceparent_sent(echo)
            self.assertEqual(trace_id, CLIENT_TRACE)
            self.assertNotEqual(parent, CLIENT_SPAN)
            spans = collector.wait_for(lambda s: any(x["spanId"] == parent for x in s))
            self.assertTrue(any(s["spanId"] == parent for s in spans))
        finally:
            usher.stop()
            backend.stop()
            collector.close()


class Check(unittest.TestCase):
    def test_usher_check_names_the_place_of_a_bad_value(self):
        path = write_config(
            "tracing:\n  otlp: https://127.0.0.1:4318/v1/traces\n  sample: 2\n"
            "listeners:\n  - { listen: 127.0.0.1:1, pool: web }\n"
            "pools:\n  - { name: web, backends: [127.0.0.1:2] }\n")
        try:
            result = subprocess.run([USHER, "check", "-c", path], capture_output=True, text=True, timeout=30)
            self.assertEqual(result.returncode, 1)
            self.assertIn(f"{path}:2:9: otlp: https is not supported", result.stderr + result.stdout)
            self.assertIn(f"{path}:3:11: sample must be a ratio from 0 to 1", result.stderr + result.stdout)
        finally:
            os.unlink(path)


if __name__ == "__main__":
    unittest.main()
