"""Cluster-wide rate limits: several ushers share a `scope: cluster` limit through one real
redis-server, so a client that moves between instances gets the limit once, not once per instance.
Leases keep Redis off the path of most requests; a Redis outage leaves each instance to enforce
its limits alone (or deny, if told to) and heals by itself; a `key_prefix` keeps clusters on one
Redis apart; the health file tells a VRRP daemon whether this usher is fit to hold the address.

The counts below follow from GCRA: over T seconds one key gets burst + rate x T requests, and the
leases (at most burst / 2 per worker, given back when unspent) add at most a few more."""
import http.client
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
import uuid
from collections import Counter

from harness import USHER, Process, connect, free_port, listener_tls, start_backend, wait_port, write_config
from test_protection import parse_metrics

RATE, BURST = 100, 10
LIMITED = "        rate_limit: { key: 'header:X-Key', rate: 100/s, burst: 10, scope: SCOPE }\n"


class Redis:
    """A real redis-server on a free loopback port, without persistence: a restart is empty."""

    def __init__(self):
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="usher-cluster-redis-")
        self.process = None
        self.start()

    def start(self):
        self.process = Process(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                                "--dir", self.dir, "--save", "", "--appendonly", "no"], port=self.port)

    def kill(self):
        self.process.stop()

    def cli(self, *args):
        return subprocess.run(["redis-cli", "-p", str(self.port), *args], capture_output=True, text=True,
                              timeout=5, check=True).stdout

    def evalsha_calls(self):
        match = re.search(r"^cmdstat_evalsha:calls=(\d+),", self.cli("INFO", "commandstats"), re.M)
        return int(match.group(1)) if match else 0

    def close(self):
        self.process.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class Instance:
    """One usher: its own listen and admin ports, one worker (a client's one keep-alive connection
    reaches one worker anyway); the route /api is rate limited, / is not."""

    def __init__(self, test, backend, redis=None, scope="cluster", cluster_extra=""):
        self.port, self.admin = free_port(), free_port()
        cluster = f"cluster:\n  redis: 127.0.0.1:{redis.port}\n{cluster_extra}" if redis else ""
        self.config = write_config(
            f"workers: 1\nadmin: {{ listen: 127.0.0.1:{self.admin} }}\n{cluster}"
            f"listeners:\n  - name: web\n    listen: 127.0.0.1:{self.port}\n{listener_tls()}    routes:\n"
            "      - name: api\n        match: { path_prefix: /api }\n        pool: app\n"
            + LIMITED.replace("SCOPE", scope)
            + "      - name: open\n        match: { path_prefix: / }\n        pool: app\n"
            f"pools:\n  - name: app\n    backends: [127.0.0.1:{backend}]\n")
        test.addCleanup(os.unlink, self.config)
        self.process = Process([USHER, "run", "-c", self.config], port=self.port)
        test.addCleanup(self.process.stop)
        wait_port(self.admin)

    def metric(self, name, **labels):
        c = http.client.HTTPConnection("127.0.0.1", self.admin, timeout=5)
        c.request("GET", "/metrics")
        text = c.getresponse().read().decode()
        c.close()
        return parse_metrics(text).get((name, frozenset(labels.items())))

    def log_count(self, text):
        return self.process.output().count(text)


class KeepAlive:
    """One keep-alive connection, answers parsed just enough to count them: (status, fields)
    with lowercase field names, or (None, {"error": ...}) when the exchange failed."""

    def __init__(self, port):
        self.port, self.sock, self.buffer = port, None, b""

    def get(self, path, key):
        try:
            if self.sock is None:
                self.sock, self.buffer = connect(self.port), b""
            self.sock.sendall(f"GET {path} HTTP/1.1\r\nHost: usher\r\nX-Key: {key}\r\n\r\n".encode())
            status, fields = self.read_answer()
        except (OSError, ssl.SSLError, ValueError) as e:
            self.close()
            return None, {"error": repr(e)}
        if fields.get("connection", "").lower() == "close":
            self.close()
        return status, fields

    def read_answer(self):
        while b"\r\n\r\n" not in self.buffer:
            self.fill()
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        fields = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            fields[name.strip().lower()] = value.strip()
        length = int(fields.get("content-length", "0"))
        while len(self.buffer) < length:
            self.fill()
        self.buffer = self.buffer[length:]
        return int(lines[0].split(" ", 2)[1]), fields

    def fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("closed by usher before a whole answer")
        self.buffer += data

    def close(self):
        if self.sock is not None:
            self.sock.close()
        self.sock = None


class Tally:
    """What one client saw: statuses, per instance the 200s, and the answers that break a rule."""

    def __init__(self):
        self.statuses, self.served, self.wrong = Counter(), Counter(), []

    def add(self, port, status, fields):
        self.statuses[status] += 1
        if status == 200:
            self.served[port] += 1
        elif status != 429:
            self.wrong.append((status, fields))
        elif not (re.fullmatch(r"\d+", fields.get("retry-after", ""))
                  and "ratelimit-policy" in fields and "ratelimit" in fields):
            self.wrong.append((status, fields))

    @property
    def requests(self):
        return sum(self.statuses.values())


def load(clients, key, seconds, path="/api", tally=None, every=None):
    """Alternates requests between the clients as fast as one thread can for `seconds`; calls
    `every()` between requests when given (it says whether to stop early)."""
    tally = tally or Tally()
    deadline, turn = time.monotonic() + seconds, 0
    while time.monotonic() < deadline:
        client = clients[turn % len(clients)]
        turn += 1
        tally.add(client.port, *client.get(path, key))
        if every and every():
            break
    return tally


def expected(seconds, instances=1):
    """burst + rate x T of each instance that decides alone (one, if they share)."""
    return instances * (BURST + RATE * seconds)


class SharedLimit(unittest.TestCase):
    def setUp(self):
        self.backend, process = start_backend("app")
        self.addCleanup(process.stop)

    def pair(self, redis=None, scope="cluster", extras=("", "")):
        instances = [Instance(self, self.backend, redis, scope, extra) for extra in extras]
        clients = [KeepAlive(i.port) for i in instances]
        for c in clients:
            self.addCleanup(c.close)
        return instances, clients

    def assert_about(self, served, target, share, what):
        self.assertGreaterEqual(served, target * (1 - share), what)
        self.assertLessEqual(served, target * (1 + share), what)

    def test_two_instances_share_one_limit_with_few_round_trips(self):
        # 100/s with a burst of 10 over 5 s: 10 + 500 = 510 through both instances together,
        # inside 500 +- 5 % (475..525) whatever the leases hold at the end.
        redis = Redis()
        self.addCleanup(redis.close)
        _, clients = self.pair(redis)
        redis.cli("CONFIG", "RESETSTAT")
        tally = load(clients, uuid.uuid4().hex, 5.0)
        calls = redis.evalsha_calls()
        served = tally.statuses[200]
        print(f"\ncluster, 5 s: {tally.requests} requests, {served} x 200 ({dict(tally.served)}), "
              f"{tally.statuses[429]} x 429, {calls} EVALSHA")
        self.assertEqual(tally.wrong[:5], [])
        self.assertGreater(tally.requests, 4 * 550, "the client was too slow for the count to mean anything")
        self.assert_about(served, RATE * 5, 0.05, "allowed requests of one key through two instances")
        self.assertTrue(all(tally.served[c.port] > 0 for c in clients), "an instance allowed nothing")
        self.assertLess(calls, tally.requests / 4, "a Redis round trip per request")
        self.assertGreater(calls, 0)

    def test_many_clients_at_once_on_one_key_still_share_one_limit(self):
        """Twenty connections per instance on one key: an answer's batch goes to the first
        waiters and the rest ask again or are refused, never let through by an instance's own
        limit while Redis is up (that would let up to 1 + N times the rate through)."""
        redis = Redis()
        self.addCleanup(redis.close)
        instances, _ = self.pair(redis)
        key, tallies = uuid.uuid4().hex, [Tally() for _ in range(40)]

        def run(i):
            client = KeepAlive(instances[i % 2].port)
            try:
                load([client], key, 3.0, tally=tallies[i])
            finally:
                client.close()

        threads = [threading.Thread(target=run, args=(i,)) for i in range(len(tallies))]
        started = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        # The clients start and end one after another: the limit's worth is over all of it.
        window = time.monotonic() - started
        served = sum(t.statuses[200] for t in tallies)
        print(f"\n40 clients, {window:.2f} s: {sum(t.requests for t in tallies)} requests, "
              f"{served} x 200 (the limit: {BURST + RATE * window:.0f})")
        self.assertEqual([w for t in tallies for w in t.wrong][:5], [])
        self.assertLessEqual(served, (BURST + RATE * window) * 1.05, "more than one limit's worth")
        self.assertGreaterEqual(served, expected(3.0) * 0.85, "the limit's allowance was lost")

    def test_local_scope_is_a_limit_per_instance(self):
        """The control: the same load with `scope: local` lets each instance allow the key alone."""
        _, clients = self.pair(scope="local")
        tally = load(clients, uuid.uuid4().hex, 3.0)
        print(f"\nlocal, 3 s: {tally.requests} requests, {dict(tally.served)} x 200")
        self.assertEqual(tally.wrong[:5], [])
        self.assert_about(tally.statuses[200], expected(3.0, instances=2), 0.05, "allowed, each instance alone")

    def test_a_redis_outage_falls_back_to_local_limits_and_heals(self):
        redis = Redis()
        self.addCleanup(redis.close)
        instances, clients = self.pair(redis)
        address = f"cluster: Redis 127.0.0.1:{redis.port}"
        tally = load(clients, uuid.uuid4().hex, 1.0)
        print(f"\nbefore, 1 s: {tally.requests} requests, {tally.statuses[200]} x 200")
        redis.kill()
        # The outage, on a key of its own: each instance decides alone, 2 x (10 + 100 x 2) = 420;
        # 10 % for the moment each instance learns Redis is gone (its first ask fails).
        outage = load(clients, uuid.uuid4().hex, 2.0, tally=Tally())
        down = [i.metric("usher_cluster_redis_up") for i in instances]
        print(f"outage, 2 s: {outage.requests} requests, {dict(outage.served)} x 200, redis_up {down}")
        self.assertEqual(down, [0, 0])
        self.assertEqual(outage.wrong[:5], [])
        self.assertGreater(outage.requests, 4 * expected(2.0, instances=2), "answers stopped coming")
        self.assert_about(outage.statuses[200], expected(2.0, instances=2), 0.10, "allowed during the outage")

        redis.start()
        restarted = time.monotonic()
        healed = lambda: all(i.metric("usher_cluster_redis_up") == 1 for i in instances)
        load(clients, uuid.uuid4().hex, 2.0, tally=tally, every=healed)
        gap = time.monotonic() - restarted
        print(f"redis_up back to 1 {gap:.2f} s after the restart")
        self.assertTrue(healed(), "usher_cluster_redis_up not 1 within 2 s of Redis's return")
        after = load(clients, uuid.uuid4().hex, 3.0, tally=Tally())
        print(f"after, 3 s: {after.requests} requests, {dict(after.served)} x 200")
        for t in (tally, after):
            self.assertEqual(t.wrong[:5], [])
        # 300 +- 5 %, plus the burst.
        self.assertGreaterEqual(after.statuses[200], RATE * 3 * 0.95 + BURST)
        self.assertLessEqual(after.statuses[200], RATE * 3 * 1.05 + BURST)
        for i in instances:
            self.assertEqual(i.log_count(f"{address} unreachable ("), 1, i.process.output())
            self.assertEqual(i.log_count(f"{address} reachable;"), 2, i.process.output())

    def test_a_redis_that_refuses_writes_counts_as_away(self):
        """A read-only replica answers every connection and every SCRIPT LOAD, but no lease could
        be written there: usher says so once, limits alone, and shares again once it is writable."""
        redis = Redis()
        self.addCleanup(redis.close)
        redis.cli("REPLICAOF", "127.0.0.1", str(free_port()))  # a master that is not there
        [instance], [client] = self.pair(redis, extras=("",))
        address = f"cluster: Redis 127.0.0.1:{redis.port}"
        deadline = time.monotonic() + 3
        while instance.log_count(f"{address} unreachable (SET: READONLY") == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertEqual(instance.log_count(f"{address} unreachable (SET: READONLY"), 1, instance.process.output())
        self.assertEqual(instance.metric("usher_cluster_redis_up"), 0)
        self.assertEqual(client.get("/api", "k")[0], 200)  # decided by the instance alone
        redis.cli("REPLICAOF", "NO", "ONE")
        deadline = time.monotonic() + 3
        while instance.metric("usher_cluster_redis_up") != 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertEqual(instance.metric("usher_cluster_redis_up"), 1, instance.process.output())
        self.assertEqual(instance.log_count(f"{address} unreachable ("), 1, instance.process.output())

    def test_deny_answers_503_while_redis_is_away(self):
        """on_redis_failure: deny refuses what a cluster limit guards while it cannot be checked,
        and nothing else; Redis's return lifts it."""
        redis = Redis()
        self.addCleanup(redis.close)
        redis.kill()  # its port stays known; Redis comes later
        [instance], [client] = self.pair(redis, extras=("  on_redis_failure: deny\n",))
        answers = [client.get("/api", "k") for _ in range(20)]
        self.assertEqual([s for s, _ in answers], [503] * 20, answers[0])
        self.assertEqual({f.get("retry-after") for _, f in answers}, {"1"})
        self.assertEqual([client.get("/", "k")[0] for _ in range(20)], [200] * 20)
        self.assertEqual(instance.metric("usher_cluster_redis_up"), 0)
        redis.start()
        deadline = time.monotonic() + 3
        while instance.metric("usher_cluster_redis_up") != 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertEqual(instance.metric("usher_cluster_redis_up"), 1, instance.process.output())
        self.assertEqual(client.get("/api", "k")[0], 200)

    def test_clusters_with_their_own_key_prefix_do_not_share(self):
        # The same listener, route and key in two clusters: each allows 10 + 100 x 3 = 310.
        redis = Redis()
        self.addCleanup(redis.close)
        _, clients = self.pair(redis, extras=('  key_prefix: "east:"\n', '  key_prefix: "west:"\n'))
        tally = load(clients, "shared-key", 3.0)
        keys = redis.cli("--scan", "--pattern", "*:rl:*").split()
        print(f"\ntwo prefixes, 3 s: {tally.requests} requests, {dict(tally.served)} x 200; keys {keys}")
        self.assertEqual(tally.wrong[:5], [])
        for c in clients:
            self.assert_about(tally.served[c.port], expected(3.0), 0.05, "allowed by one cluster")
        self.assertEqual(sorted(k.split(":")[0] for k in keys), ["east", "west"])
        self.assertTrue(all(k.split(":", 1)[1].startswith("rl:web/api:") for k in keys), keys)


class Check(unittest.TestCase):
    """`usher check` places each cluster mistake at FILE:LINE:COL."""
    TEXT = ("cluster:\nCLUSTER"
            "listeners:\n  - name: web\n    listen: 127.0.0.1:8080\n    routes:\n"
            "      - name: api\n        pool: app\n" + LIMITED +
            "pools:\n  - name: app\n    backends: [127.0.0.1:9001]\n")

    def check(self, cluster, scope="cluster"):
        text = self.TEXT.replace("CLUSTER", cluster).replace("SCOPE", scope)
        if not cluster:
            text = text.replace("cluster:\n", "", 1)
        path = write_config(text)
        self.addCleanup(os.unlink, path)
        result = subprocess.run([USHER, "check", "-c", path], capture_output=True, text=True, timeout=10)
        return text, path, result

    def assert_refused(self, result, path, text, marker, words):
        number = next(n for n, line in enumerate(text.splitlines(), 1) if marker in line)
        self.assertNotEqual(result.returncode, 0)
        self.assertRegex(result.stderr, rf"(?m)^{re.escape(path)}:{number}:\d+: .*{words}")

    def test_a_valid_cluster_passes(self):
        folder = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, folder, True)
        _, _, result = self.check("  redis: 127.0.0.1:6379\n  key_prefix: \"a:\"\n  on_redis_failure: deny\n"
                                  f"  health_file: {folder}/usher.health\n")
        self.assertEqual(result.returncode, 0, result.stderr)

    def test_cluster_scope_without_redis(self):
        text, path, result = self.check("")
        self.assert_refused(result, path, text, "scope: cluster", "cluster: \\{ redis")
        line = next(line for line in text.splitlines() if "scope: cluster" in line)
        self.assertIn(f":{line.index('cluster') + 1}: ", result.stderr)  # the value's column

    def test_an_unknown_on_redis_failure(self):
        text, path, result = self.check("  redis: 127.0.0.1:6379\n  on_redis_failure: other\n")
        self.assert_refused(result, path, text, "on_redis_failure", "local or deny.*other")

    def test_key_prefix_without_redis(self):
        text, path, result = self.check('  key_prefix: "a:"\n', scope="local")
        self.assert_refused(result, path, text, "key_prefix", "add 'redis'")

    def test_a_health_file_in_a_missing_folder(self):
        text, path, result = self.check("  health_file: /nonexistent/usher/health\n", scope="local")
        self.assert_refused(result, path, text, "health_file", "/nonexistent/usher does not exist")


class HealthFile(unittest.TestCase):
    """keepalived's track_file reads 0 as fit: serving with a healthy backend in every pool."""

    def read_until(self, path, content, timeout):
        deadline, seen = time.monotonic() + timeout, None
        while time.monotonic() < deadline:
            if os.path.exists(path):
                with open(path) as f:
                    seen = f.read()
                if seen == content:
                    return time.monotonic()
            time.sleep(0.02)
        self.fail(f"{path} holds {seen!r}, not {content!r}, after {timeout} s")

    def test_the_health_file_follows_fitness_and_stopping(self):
        folder = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, folder, True)
        health = os.path.join(folder, "usher.health")
        backend, process = start_backend("app")
        self.addCleanup(lambda: process.stop())
        port = free_port()
        config = write_config(
            f"workers: 1\ncluster:\n  health_file: {health}\n"
            f"listeners:\n  - name: web\n    listen: 127.0.0.1:{port}\n    pool: app\n{listener_tls()}"
            f"pools:\n  - name: app\n    backends: [127.0.0.1:{backend}]\n"
            "    health: { type: http, path: /health, interval: 200ms, timeout: 200ms, rise: 1, fall: 1 }\n")
        self.addCleanup(os.unlink, config)
        usher = Process([USHER, "run", "-c", config], port=port)
        self.addCleanup(usher.stop)
        self.read_until(health, "0\n", 2.0)
        # Up but broken (/health is a 503): unfit within a check interval and the 100 ms tick.
        process.stop()
        started = time.monotonic()
        _, process = start_backend("app", port=backend, health=503)
        unfit = self.read_until(health, "1\n", 1.5) - started
        process.stop()
        started = time.monotonic()
        _, process = start_backend("app", port=backend)
        fit = self.read_until(health, "0\n", 1.5) - started
        print(f"\nhealth file: 1 after {unfit:.2f} s, 0 again after {fit:.2f} s")
        self.assertLess(unfit, 1.0)
        self.assertLess(fit, 1.0)
        usher.signal(signal.SIGTERM)
        self.assertEqual(usher.wait(10), 0)
        with open(health) as f:
            self.assertEqual(f.read(), "1\n")


if __name__ == "__main__":
    unittest.main()
