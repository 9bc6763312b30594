"""What else several ushers share through one real redis-server: TLS session-ticket keys, so a
client resumes its session on any instance, and health checks, so each backend is probed by one
instance at a time and the others take its verdict."""
import http.client
import os
import shutil
import signal
import tempfile
import time
import unittest

from harness import USHER, Process, backend_stats, free_port, start_backend, wait_port, write_config
from test_cluster import Redis
from test_protection import parse_metrics
from test_tls import make_certificate, resumed_session


def start_instance(test, cluster, listener, pool_extra="", backend=None):
    """One usher with a `cluster` block (YAML lines under it) and a listener block; its
    (port, admin, process)."""
    port, admin = free_port(), free_port()
    config = write_config(
        f"workers: 1\nadmin: {{ listen: 127.0.0.1:{admin} }}\ncluster:\n{cluster}"
        f"listeners:\n  - name: web\n    listen: 127.0.0.1:{port}\n    pool: app\n{listener}"
        f"pools:\n  - name: app\n    backends: [127.0.0.1:{backend}]\n{pool_extra}")
    test.addCleanup(os.unlink, config)
    process = Process([USHER, "run", "-c", config], port=port)
    test.addCleanup(process.stop)
    wait_port(admin)
    return port, admin, process


def metrics(admin):
    c = http.client.HTTPConnection("127.0.0.1", admin, timeout=5)
    c.request("GET", "/metrics")
    text = c.getresponse().read().decode()
    c.close()
    return parse_metrics(text)


def wait_for(condition, seconds, what):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"not within {seconds} s: {what}")


class SharedTickets(unittest.TestCase):
    """session_tickets: { cluster: true }: the ring's keys come from Redis, made once by the
    first instance to need them, so every instance of the cluster opens every ticket."""

    def setUp(self):
        self.folder = tempfile.mkdtemp(prefix="usher-cluster-tls-")
        self.addCleanup(shutil.rmtree, self.folder, True)
        self.cert = make_certificate(self.folder, "site.test")
        self.redis = Redis()
        self.addCleanup(self.redis.close)
        backend, process = start_backend("app")
        self.addCleanup(process.stop)
        self.backend = backend

    def start(self, prefix="usher:"):
        tls = (f"    tls:\n      certificates: [{{ cert: {self.cert[0]}, key: {self.cert[1]} }}]\n"
               "      session_tickets: { cluster: true, rotate: 1h }\n")
        return start_instance(self, f"  redis: 127.0.0.1:{self.redis.port}\n  key_prefix: '{prefix}'\n",
                              tls, backend=self.backend)

    def wait_for_keys(self, prefix, count):
        """Until the cluster thread has made (or read) the ring's three keys of each prefix."""
        wait_for(lambda: len(self.redis.cli("KEYS", f"{prefix}tls:tickets:3600:*").split()) == count, 5,
                 f"{count} ticket keys under {prefix}")
        time.sleep(0.3)  # read back and handed to the workers' rings in the same pass

    def test_a_session_resumes_on_the_other_instance_of_the_cluster_only(self):
        first, second = self.start()[0], self.start()[0]
        stranger = self.start("other:")[0]  # another cluster on the same Redis
        self.wait_for_keys("usher:", 3)
        self.wait_for_keys("other:", 3)
        reused, session = resumed_session(first)
        self.assertFalse(reused)
        self.assertTrue(resumed_session(first, session)[0])
        self.assertTrue(resumed_session(second, session)[0])
        self.assertFalse(resumed_session(stranger, session)[0])

    def test_without_redis_each_instance_resumes_only_its_own_sessions(self):
        self.redis.kill()
        first, second = self.start()[0], self.start()[0]
        _, session = resumed_session(first)
        self.assertTrue(resumed_session(first, session)[0])
        self.assertFalse(resumed_session(second, session)[0])


class SharedHealth(unittest.TestCase):
    """cluster.share_health: one instance at a time holds a backend's probe lease and probes it;
    the others take its verdict, so the probe load on a backend does not double with two
    balancers; when the holder dies another takes over."""

    INTERVAL = 0.2
    HEALTH = ("    health: { type: http, path: /health, interval: 200ms, timeout: 200ms, rise: 1, "
              "fall: 1 }\n")

    def setUp(self):
        self.redis = Redis()
        self.addCleanup(self.redis.close)
        self.backend, process = start_backend("app")
        self.backend_process = process
        self.addCleanup(lambda: self.backend_process.stop())

    def start(self, share):
        cluster = f"  redis: 127.0.0.1:{self.redis.port}\n  share_health: {'true' if share else 'false'}\n"
        return start_instance(self, cluster, "", self.HEALTH, backend=self.backend)

    def probes_in(self, seconds):
        """Health probes the backend received over `seconds` (nothing else reaches it)."""
        before = backend_stats(self.backend)["other_requests"]
        time.sleep(seconds)
        return backend_stats(self.backend)["other_requests"] - before

    def test_two_instances_probe_a_backend_as_often_as_one(self):
        single = 3 / self.INTERVAL  # one prober's checks in 3 s
        instances = [self.start(share=True), self.start(share=True)]
        time.sleep(1)  # leases taken
        shared = self.probes_in(3)
        self.assertLess(shared, 1.4 * single, "two probers at once")
        self.assertGreater(shared, 0.6 * single, "nobody probes")
        # The holder (its name in the lease is in its log) dies; the other takes over once the
        # lease runs out (2 s).
        holder = self.redis.cli("GET", f"usher:health:lease:app/127.0.0.1:{self.backend}").strip()
        self.assertTrue(holder)
        holders = [i for i in instances if f"this instance is {holder})" in i[2].output()]
        self.assertEqual(len(holders), 1, holder)
        holders[0][2].signal(signal.SIGKILL)
        time.sleep(3)
        taken_over = self.probes_in(3)
        self.assertGreater(taken_over, 0.6 * single, "the survivor does not probe")
        self.assertLess(taken_over, 1.4 * single)

    def test_without_sharing_each_instance_probes(self):
        single = 3 / self.INTERVAL
        for _ in range(2):
            self.start(share=False)
        time.sleep(1)
        self.assertGreater(self.probes_in(3), 1.6 * single)

    def test_the_probers_verdict_reaches_the_instance_that_does_not_probe(self):
        instances = [self.start(share=True), self.start(share=True)]
        time.sleep(1)
        up = lambda admin: metrics(admin).get(("usher_backend_up", frozenset(
            {("pool", "app"), ("backend", f"127.0.0.1:{self.backend}")})))
        for _, admin, _ in instances:
            self.assertEqual(up(admin), 1)
        self.backend_process.stop()
        self.backend, self.backend_process = start_backend("app", port=self.backend, health=503)
        for _, admin, _ in instances:
            wait_for(lambda: up(admin) == 0, 3, "the backend down on every instance")
        # One of them probed; the other said so because the prober said so.
        logs = [p.output() for _, _, p in instances]
        self.assertEqual(sum("as the cluster's prober says" in log for log in logs), 1, logs)


if __name__ == "__main__":
    unittest.main()
