"""A pool's backends from a discovery file (`discovery: { file }`): an autoscaler-style rename of
a new list adds and removes backends under keep-alive load with no failed request (leaving
backends drain), a list that cannot be read keeps the last good one and says why, and `usher
check` places the list's errors in its own file."""
import http.client
import os
import shutil
import subprocess
import tempfile
import threading
import time
import unittest

from harness import USHER, Process, free_port, start_backend


class Load:
    """Keep-alive clients asking `GET /` in a loop until stop(); each answer's body names the
    backend. Bounded: stops by itself after `seconds`."""

    def __init__(self, port, clients=4, seconds=60):
        self.port, self.seconds = port, seconds
        self.lock = threading.Lock()
        self.served, self.failures, self.running = {}, [], True
        self.threads = [threading.Thread(target=self.client) for _ in range(clients)]
        for t in self.threads:
            t.start()

    def client(self):
        deadline = time.monotonic() + self.seconds
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        while self.running and time.monotonic() < deadline:
            try:
                connection.request("GET", "/")
                response = connection.getresponse()
                body = response.read().decode()
                with self.lock:
                    if response.status != 200:
                        self.failures.append(f"{response.status} {body}")
                    self.served[body] = self.served.get(body, 0) + 1
            except (OSError, http.client.HTTPException) as error:
                with self.lock:
                    self.failures.append(repr(error))
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        connection.close()

    def counts(self):
        with self.lock:
            return dict(self.served)

    def stop(self):
        self.running = False
        for t in self.threads:
            t.join(timeout=10)


def sequential_spread(port, requests=30):
    counts = {"a": 0, "b": 0, "c": 0}
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    for _ in range(requests):
        connection.request("GET", "/")
        body = connection.getresponse().read().decode()
        counts[body] = counts.get(body, 0) + 1
    connection.close()
    return counts


class Discovery(unittest.TestCase):
    def setUp(self):
        self.folder = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.folder, True)
        self.backends = {}
        for name in ("a", "b", "c", "broken"):
            port, process = start_backend(name, health=503 if name == "broken" else None)
            self.addCleanup(process.stop)
            self.backends[name] = port
        self.list_path = os.path.join(self.folder, "backends.yaml")
        self.port = free_port()
        self.config = os.path.join(self.folder, "usher.yaml")
        self.write_config()

    def write_config(self, pool_extra=""):
        with open(self.config, "w") as f:
            f.write(f"workers: 2\nlisteners:\n  - name: web\n    listen: 127.0.0.1:{self.port}\n    pool: web\n"
                    f"pools:\n  - name: web\n    discovery: {{ file: backends.yaml }}\n{pool_extra}")

    def publish(self, text):
        """As an autoscaler does: write a new file beside the list, then rename it into place."""
        staged = os.path.join(self.folder, ".backends.yaml.new")
        with open(staged, "w") as f:
            f.write(text)
        os.rename(staged, self.list_path)

    def listing(self, *names):
        return "".join(f"- {{ address: 127.0.0.1:{self.backends[n]}, name: {n} }}\n" for n in names)

    def start(self):
        usher = Process([USHER, "run", "-c", self.config], port=self.port)
        self.addCleanup(usher.stop)
        return usher

    def wait_for_log(self, usher, text, count=1, timeout=10.0):
        deadline = time.monotonic() + timeout
        while usher.output().count(text) < count:
            if time.monotonic() > deadline:
                self.fail(f"usher did not log {text!r} {count} time(s): {usher.output()[-2000:]}")
            time.sleep(0.02)

    def wait_for(self, load, condition, what, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition(load.counts()):
                return
            time.sleep(0.05)
        self.fail(f"{what}: served {load.counts()}")

    def serve_a_and_b_under_load(self):
        with open(self.list_path, "w") as f:
            f.write(self.listing("a", "b"))
        usher = self.start()
        load = Load(self.port)
        self.addCleanup(load.stop)
        self.wait_for(load, lambda c: c.get("a", 0) > 50 and c.get("b", 0) > 50, "a and b serve")
        return usher, load

    def test_a_joining_backend_serves_only_once_its_first_health_check_passed(self):
        self.write_config("    health: { interval: 300ms, timeout: 1s, rise: 3, fall: 3 }\n")
        usher, load = self.serve_a_and_b_under_load()
        self.publish(self.listing("a", "b", "c", "broken"))
        self.wait_for_log(usher, "discovery: serving generation 2")
        # One pass brings a backend that never failed up (not `rise`: 3); a broken one never
        # gets a request, where without the gate it would until `fall` checks failed.
        self.wait_for_log(usher, f"backend=127.0.0.1:{self.backends['c']} DOWN -> UP after 1 passed")
        self.wait_for(load, lambda c: c.get("c", 0) > 50, "c joins")
        time.sleep(1.0)  # three more checks of the broken one
        load.stop()
        self.assertEqual(load.counts().get("broken", 0), 0, "a backend that never passed served")
        self.assertEqual(load.failures, [])

    def test_a_list_that_replaces_every_backend_is_trusted_at_once(self):
        # Checked every 10 s: gated joiners would leave the pool empty until their first check.
        self.write_config("    health: { interval: 10s, timeout: 1s, rise: 3, fall: 3 }\n")
        usher, load = self.serve_a_and_b_under_load()
        self.publish(self.listing("c"))  # a blue/green switch
        self.wait_for_log(usher, "discovery: serving generation 2")
        self.wait_for(load, lambda c: c.get("c", 0) > 100, "c serves")
        load.stop()
        self.assertEqual(load.failures, [])

    def test_a_renamed_list_adds_and_removes_backends_under_load_with_no_failure(self):
        usher, load = self.serve_a_and_b_under_load()

        self.publish(self.listing("a", "b", "c"))  # scale out
        self.wait_for_log(usher, "discovery: serving generation 2")
        self.wait_for(load, lambda c: c.get("c", 0) > 50, "c joins")

        self.publish(self.listing("c"))  # scale in: a and b leave
        self.wait_for_log(usher, "discovery: serving generation 3")  # every worker serves it
        time.sleep(1.0)  # the requests already under way on a and b finish there
        before = load.counts()
        self.wait_for(load, lambda c: c.get("c", 0) > before.get("c", 0) + 200, "c serves on")
        after = load.counts()
        load.stop()
        self.assertEqual((after.get("a"), after.get("b")), (before.get("a"), before.get("b")),
                         "a backend that left got requests")
        self.assertEqual(load.failures, [])

    def test_a_list_that_cannot_be_read_keeps_the_last_good_one(self):
        with open(self.list_path, "w") as f:
            f.write(self.listing("a"))
        usher = self.start()
        load = Load(self.port, clients=2)
        self.addCleanup(load.stop)
        self.wait_for(load, lambda c: c.get("a", 0) > 20, "a serves")
        self.publish("- 127.0.0.1:99999\n")  # a port that cannot be
        self.wait_for_log(usher, "pool 'web' keeps its 1 backends")
        self.assertIn("backends.yaml:1:3: invalid address '127.0.0.1:99999'", usher.output())
        for count, empty in enumerate(("", "[]\n"), start=2):  # a pool keeps at least one backend
            self.publish(empty)
            self.wait_for_log(usher, "pool 'web' keeps its 1 backends", count)
        self.assertEqual(usher.output().count("the backend list is empty"), 2)
        before = load.counts().get("a", 0)
        self.wait_for(load, lambda c: c.get("a", 0) > before + 50, "a serves on")
        self.publish(self.listing("b"))  # a good list again is taken
        self.wait_for(load, lambda c: c.get("b", 0) > 20, "b replaces a")
        load.stop()
        self.assertEqual(load.failures, [])

    def test_a_joining_backend_ramps_up_over_slow_start(self):
        self.write_config("    balance: least-connections\n    slow_start: 2s\n")
        with open(self.list_path, "w") as f:
            f.write(self.listing("a", "b"))
        usher = self.start()
        self.publish(self.listing("a", "b", "c"))
        self.wait_for_log(usher, "discovery: serving generation 2")
        early = sequential_spread(self.port)
        time.sleep(2.2)
        late = sequential_spread(self.port)
        self.assertLessEqual(early["c"], 3, early)  # its full share would be 10
        self.assertGreaterEqual(late["c"], 8, late)

    def test_check_places_the_lists_errors_in_its_own_file(self):
        run = lambda: subprocess.run([USHER, "check", "-c", self.config], capture_output=True, text=True, timeout=30)
        missing = run()
        self.assertEqual(missing.returncode, 1)
        self.assertIn(f"{self.list_path}:1:1: cannot open file", missing.stderr + missing.stdout)
        with open(self.list_path, "w") as f:
            f.write(f"- 127.0.0.1:{self.backends['a']}\n- {{ adress: 127.0.0.1:1 }}\n")
        bad = run()
        self.assertEqual(bad.returncode, 1)
        self.assertIn(f"{self.list_path}:2:5: unknown key 'adress' in backend", bad.stderr + bad.stdout)
        with open(self.config, "a") as f:
            f.write("    backends: [127.0.0.1:1]\n")
        both = run()
        self.assertIn("from 'backends' or from 'discovery', not both", both.stderr + both.stdout)


if __name__ == "__main__":
    unittest.main()
