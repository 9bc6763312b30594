"""Live reload: SIGHUP, `usher ctl reload` and POST /api/v1/reload serve a new configuration
generation while requests, keep-alive connections and WebSocket tunnels carry on."""
import base64
import http.client
import json
import os
import re
import signal
import socket
import threading
import time
import unittest

from harness import USHER, Process, backend_stats, free_port, start_backend, wait_port, write_config


def config_text(port, admin, backends, extra_routes="", extra_listener="", pool_extra=""):
    servers = "".join(f"      - {{ address: 127.0.0.1:{p}, name: {n} }}\n" for n, p in backends)
    return (f"workers: 2\nadmin: {{ listen: 127.0.0.1:{admin} }}\n"
            f"listeners:\n  - name: web\n    listen: 127.0.0.1:{port}\n    routes:\n{extra_routes}"
            f"      - pool: web\n{extra_listener}"
            f"pools:\n  - name: web\n{pool_extra}    backends:\n{servers}")


def api(admin, method, path):
    c = http.client.HTTPConnection("127.0.0.1", admin, timeout=30)
    c.request(method, path)
    r = c.getresponse()
    body = r.read().decode()
    c.close()
    return r.status, body


def metric(admin, name):
    _, text = api(admin, "GET", "/metrics")
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{") and line.split(" ")[0] == name:
            return float(line.rsplit(" ", 1)[1])
    return None


def get(port, path="/", conn=None):
    c = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", path)
    r = c.getresponse()
    body = r.read().decode()
    if conn is None:
        c.close()
    return r.status, body


class WebSocket:
    """A WebSocket through usher to the backend's echo endpoint."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        key = base64.b64encode(os.urandom(16))
        self.sock.sendall(b"GET /ws HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                          b"Sec-WebSocket-Key: " + key + b"\r\nSec-WebSocket-Version: 13\r\n\r\n")
        head = b""
        while not head.endswith(b"\r\n\r\n"):
            byte = self.sock.recv(1)
            if not byte:
                raise ConnectionError("closed during the handshake")
            head += byte
        if not head.startswith(b"HTTP/1.1 101"):
            raise ConnectionError(head.decode(errors="replace"))

    def echo(self, message):
        mask = os.urandom(4)
        masked = bytes(c ^ mask[i % 4] for i, c in enumerate(message))
        self.sock.sendall(bytes([0x81, 0x80 | len(message)]) + mask + masked)
        frame = b""
        while len(frame) < 2 + len(message):
            data = self.sock.recv(4096)
            if not data:
                raise ConnectionError("tunnel closed")
            frame += data
        return frame[2:]

    def close(self):
        self.sock.close()


class ReloadUnderLoad(unittest.TestCase):
    def test_twenty_reloads_under_load_lose_nothing(self):
        backends = {n: start_backend(n) for n in ("a", "b", "c", "d")}
        ports = {n: p for n, (p, _) in backends.items()}
        port, admin = free_port(), free_port()
        health = "    health: { type: http, path: /health, interval: 300ms, timeout: 200ms, rise: 2, fall: 2 }\n"
        variants = [
            (("a", "b", "c"), "    balance: round-robin\n"),
            (("a", "b", "c", "d"), "    balance: least-connections\n"),
            (("a", "c", "d"), "    balance: weighted-round-robin\n"),
            (("a", "b", "c"), "    balance: hash\n    hash_key: uri\n"),
        ]
        path = write_config(config_text(port, admin, [(n, ports[n]) for n in ("a", "b", "c")],
                                         pool_extra=variants[0][1] + health))
        usher = Process([USHER, "run", "-c", path], port=port)
        wait_port(admin)
        stop = threading.Event()
        done, failures = [0], []
        lock = threading.Lock()

        def client():
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            while not stop.is_set():
                try:
                    conn.request("GET", "/")
                    response = conn.getresponse()
                    body = response.read()
                    ok = response.status == 200
                    if response.getheader("connection", "").lower() == "close":
                        ok, body = False, b"connection closed by usher"
                except (OSError, http.client.HTTPException) as e:
                    ok, body = False, repr(e).encode()
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                with lock:
                    done[0] += 1
                    if not ok:
                        failures.append(body)
            conn.close()

        ws_failures, ws_echoes = [], [0]

        def websocket():
            try:
                ws = WebSocket(port)
                while not stop.wait(1.0):
                    message = b"ping %d" % ws_echoes[0]
                    if ws.echo(message) != message:
                        ws_failures.append("wrong echo")
                    ws_echoes[0] += 1
                ws.close()
            except OSError as e:
                ws_failures.append(repr(e))

        threads = [threading.Thread(target=client) for _ in range(16)] + [threading.Thread(target=websocket)]
        try:
            for t in threads:
                t.start()
            for i in range(1, 21):
                time.sleep(0.5)
                names, pool_extra = variants[i % len(variants)]
                routes = ""
                if i == 20:  # the last reload adds a route and removes backend d and c
                    names = ("a", "b")
                    routes = "      - match: { path_prefix: /added }\n        respond: { status: 299, body: added }\n"
                with open(path, "w") as f:
                    f.write(config_text(port, admin, [(n, ports[n]) for n in names], routes,
                                        pool_extra=pool_extra + health))
                if i == 7:
                    usher.signal(signal.SIGHUP)
                    deadline = time.monotonic() + 10
                    while metric(admin, "usher_config_generation") != 8 and time.monotonic() < deadline:
                        time.sleep(0.02)
                    continue
                if i == 13:
                    ctl = Process([USHER, "ctl", "--admin", f"127.0.0.1:{admin}", "reload"])
                    self.assertEqual(ctl.wait(30), 0, ctl.output())
                    continue
                status, body = api(admin, "POST", "/api/v1/reload")
                self.assertEqual(status, 200, body)
                self.assertEqual(json.loads(body)["generation"], i + 1)
            # The last reload has returned: c and d get no new request from here on. A request that
            # had picked one of them before may still be on its way there (on a loaded machine, for
            # a while): let those arrive before counting.
            time.sleep(1.0)
            removed_before = {n: backend_stats(ports[n])["requests"] for n in ("c", "d")}
            while done[0] < 20_000 and not failures:
                time.sleep(0.1)
            time.sleep(1.5)  # more requests, and at least one more WebSocket echo
            stop.set()
            for t in threads:
                t.join(timeout=30)
            removed_after = {n: backend_stats(ports[n])["requests"] for n in ("c", "d")}
            self.assertEqual(get(port, "/added"), (299, "added"))
            print(f"\n{done[0]} requests, {ws_echoes[0]} WebSocket echoes, 20 reloads")
            self.assertGreaterEqual(done[0], 20_000)
            self.assertEqual(failures[:5], [])
            self.assertEqual(ws_failures, [])
            self.assertGreaterEqual(ws_echoes[0], 10)
            # The only request each got since is the /stats request that read its count.
            self.assertEqual(removed_after, {n: c + 1 for n, c in removed_before.items()})
            self.assertEqual(metric(admin, 'usher_config_reloads_total{result="success"}'), 20)
            self.assertEqual(metric(admin, 'usher_config_reloads_total{result="failure"}'), 0)
            self.assertEqual(metric(admin, "usher_config_generation"), 21)
        finally:
            stop.set()
            usher.stop()
            for _, b in backends.values():
                b.stop()
            os.unlink(path)


class Reload(unittest.TestCase):
    def setUp(self):
        self.backends = {n: start_backend(n, health=503 if n == "down" else None) for n in ("a", "b", "down")}
        self.ports = {n: p for n, (p, _) in self.backends.items()}
        self.port, self.admin = free_port(), free_port()
        self.health = "    health: { type: http, path: /health, interval: 200ms, timeout: 200ms, rise: 50, fall: 1 }\n"
        self.path = write_config(self.config(("a", "down")))
        self.usher = Process([USHER, "run", "-c", self.path], port=self.port)
        wait_port(self.admin)

    def tearDown(self):
        self.usher.stop()
        for _, b in self.backends.values():
            b.stop()
        os.unlink(self.path)

    def config(self, names, extra_routes="", extra_listener=""):
        return config_text(self.port, self.admin, [(n, self.ports[n]) for n in names], extra_routes,
                           extra_listener, pool_extra=self.health)

    def reload(self, text):
        with open(self.path, "w") as f:
            f.write(text)
        return api(self.admin, "POST", "/api/v1/reload")

    def test_a_broken_file_changes_nothing_and_says_where(self):
        self.assertEqual(get(self.port)[0], 200)
        status, body = self.reload(self.config(("a",)).replace("    routes:", "    routes:\n      - bogus: 1", 1))
        self.assertEqual(status, 400, body)
        problems = json.loads(body)["problems"]
        self.assertTrue(any(re.match(re.escape(self.path) + r":\d+:\d+: ", p) for p in problems), problems)
        self.assertEqual(get(self.port)[0], 200)
        self.assertEqual(metric(self.admin, 'usher_config_reloads_total{result="failure"}'), 1)
        self.assertEqual(metric(self.admin, "usher_config_generation"), 1)
        self.assertIn("reload refused", self.usher.output())

    def test_a_duplicate_key_or_a_file_over_16_mib_changes_nothing(self):
        # A second `pools:` would otherwise be dropped in silence and the first served.
        status, body = self.reload(self.config(("a",)) + "pools: []\n")
        self.assertEqual(status, 400, body)
        self.assertIn(self.path + ":13:1: duplicate key 'pools' (first at 8:1)", json.loads(body)["problems"])
        status, body = self.reload(self.config(("b",)) + "#" * (16 * 1024 * 1024) + "\n")
        self.assertEqual(status, 400, body)
        self.assertEqual(json.loads(body)["problems"], [
            f"{self.path}:1:1: is {os.path.getsize(self.path)} bytes, over the limit of 16 MiB (16777216 bytes)"])
        self.assertEqual(get(self.port)[0], 200)
        self.assertEqual(metric(self.admin, "usher_config_generation"), 1)

    def test_keys_that_need_a_restart_are_refused(self):
        status, body = self.reload(self.config(("a", "down")).replace("workers: 2", "workers: 1"))
        self.assertEqual(status, 400, body)
        self.assertIn("'workers' cannot change while usher runs", body)
        self.assertEqual(metric(self.admin, "usher_config_generation"), 1)

    def test_the_access_log_is_turned_on_moved_reformatted_and_off(self):
        import tempfile
        folder = tempfile.mkdtemp()
        first, second = os.path.join(folder, "first.log"), os.path.join(folder, "second.log")

        def lines(path, at_least):
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                if os.path.exists(path):
                    with open(path) as f:
                        found = f.read().splitlines()
                    if len(found) >= at_least:
                        return found
                time.sleep(0.05)
            self.fail(f"{path}: fewer than {at_least} lines")

        def with_log(target, fmt="json"):
            return f"access_log: {target}\naccess_log_format: {fmt}\n" + self.config(("a",))

        try:
            get(self.port, "/before")  # the log is off: this request is in no file
            self.assertEqual(self.reload(with_log(first))[0], 200)
            get(self.port, "/one")
            logged = [json.loads(line) for line in lines(first, 1)]
            self.assertEqual([entry["path"] for entry in logged], ["/one"])
            self.assertEqual(logged[0]["backend"], "a")

            self.assertEqual(self.reload(with_log(second, "combined"))[0], 200)
            get(self.port, "/two")
            combined = lines(second, 1)
            self.assertRegex(combined[0], r'^127\.0\.0\.1 - - \[.*\] "GET /two HTTP/1\.1" 200 ')
            self.assertEqual(len(lines(first, 1)), 1)  # the first file got nothing more

            status, body = self.reload(with_log(os.path.join(folder, "missing", "x.log")))
            self.assertEqual(status, 400, body)
            self.assertIn("access_log: cannot open", body)
            self.assertEqual(metric(self.admin, "usher_config_generation"), 3)
            get(self.port, "/three")  # still logged where the serving generation says
            self.assertEqual(len(lines(second, 2)), 2)

            self.assertEqual(self.reload(self.config(("a",)))[0], 200)
            get(self.port, "/four")
            time.sleep(0.5)  # workers hand lines over within 100 ms
            self.assertEqual(len(lines(second, 2)), 2)
            self.assertEqual(metric(self.admin, "usher_access_log_lines_total"), 3)
        finally:
            for name in os.listdir(folder):
                os.unlink(os.path.join(folder, name))
            os.rmdir(folder)

    def test_backends_that_stay_keep_their_health_and_counters(self):
        deadline = time.monotonic() + 10
        while "UP -> DOWN" not in self.usher.output() and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertIn("UP -> DOWN", self.usher.output())
        for _ in range(20):
            self.assertEqual(get(self.port), (200, "a"))
        before = metric(self.admin, 'usher_backend_requests_total{pool="web",backend="a",code="2xx"}')
        self.assertEqual(self.reload(self.config(("a", "down", "b")))[0], 200)
        # "down" needs 50 passing checks to return (10 s): after the reload it is still down. The
        # new backend b serves once its first check passed (one pass: it never failed).
        up = f"backend=127.0.0.1:{self.backends['b'][0]} DOWN -> UP after 1 passed"
        deadline = time.monotonic() + 5
        while up not in self.usher.output() and time.monotonic() < deadline:
            time.sleep(0.02)
        served = {get(self.port)[1] for _ in range(30)}
        self.assertEqual(served, {"a", "b"})
        after = metric(self.admin, 'usher_backend_requests_total{pool="web",backend="a",code="2xx"}')
        self.assertGreaterEqual(after, before + 1)
        self.assertGreaterEqual(before, 20)

    def test_listeners_come_and_go_and_kept_addresses_are_not_rebound(self):
        kept = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        self.assertEqual(get(self.port, conn=kept)[0], 200)
        other = free_port()
        second = f"  - name: second\n    listen: 127.0.0.1:{other}\n    pool: web\n"
        self.assertEqual(self.reload(self.config(("a",), extra_listener=second))[0], 200)
        self.assertEqual(get(other), (200, "a"))
        # The keep-alive connection made before the reload goes on, on the new generation.
        self.assertEqual(get(self.port, conn=kept), (200, "a"))
        idle = http.client.HTTPConnection("127.0.0.1", other, timeout=5)
        self.assertEqual(get(other, conn=idle)[0], 200)
        self.assertEqual(self.reload(self.config(("a",)))[0], 200)
        with self.assertRaises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", other), timeout=2).close()
        with self.assertRaises((OSError, http.client.HTTPException)):
            get(other, conn=idle)  # an idle connection of the removed listener was closed
        self.assertEqual(get(self.port, conn=kept), (200, "a"))
        kept.close()
        self.assertNotIn("cannot listen", self.usher.output())

    def test_api_changes_against_a_reload_as_documented(self):
        # docs/operations.md: a drain on a backend that stays is kept; a backend added and a
        # weight set through the API give way to the file.
        self.assertEqual(api(self.admin, "POST", "/api/v1/pools/web/backends/a/drain")[0], 200)
        added = f"/api/v1/pools/web/backends?address=127.0.0.1:{self.ports['b']}&name=b"
        self.assertEqual(api(self.admin, "POST", added)[0], 201)
        self.assertEqual(api(self.admin, "POST", "/api/v1/pools/web/backends/a/weight?value=7")[0], 200)
        self.assertEqual(self.reload(self.config(("a", "down")))[0], 200)
        backends = {b["name"]: b for b in json.loads(api(self.admin, "GET", "/api/v1/pools")[1])["pools"][0]["backends"]}
        self.assertEqual(sorted(backends), ["a", "down"])
        self.assertEqual(backends["a"]["state"], "draining")
        self.assertEqual(backends["a"]["weight"], 1)

    def test_quick_mode_has_no_file_to_reload(self):
        port = free_port()
        quick = Process([USHER, "proxy", "--listen", f"127.0.0.1:{port}", "--to",
                         f"127.0.0.1:{self.ports['a']}", "--admin", f"127.0.0.1:{free_port()}"], port=port)
        try:
            admin = int(re.search(r"admin API on 127\.0\.0\.1:(\d+)", quick.output()).group(1))
            status, body = api(admin, "POST", "/api/v1/reload")
            self.assertEqual(status, 400, body)
            self.assertIn("quick mode", body)
            self.assertEqual(get(port), (200, "a"))
        finally:
            quick.stop()

    def test_a_request_in_flight_finishes_on_its_generation(self):
        slow = {}

        def request():
            slow["result"] = get(self.port, "/sleep?ms=800")

        t = threading.Thread(target=request)
        t.start()
        time.sleep(0.2)
        routes = "      - match: { path_prefix: /sleep }\n        respond: { status: 298, body: new }\n"
        self.assertEqual(self.reload(self.config(("a",), extra_routes=routes))[0], 200)
        t.join(10)
        self.assertEqual(slow["result"], (200, "a"))
        self.assertEqual(get(self.port, "/sleep?ms=1"), (298, "new"))


if __name__ == "__main__":
    unittest.main()
