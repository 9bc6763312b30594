"""`usher simulate --replay`: the workload of usher's own access log, replayed through every
algorithm, ranks them the way live runs of the same algorithms on the same servers do."""
import http.client
import json
import os
import random
import signal
import subprocess
import tempfile
import threading
import time
import unittest
from concurrent.futures import ThreadPoolExecutor

from harness import USHER, start_backend, start_usher
from test_balancing import p99

ALGORITHMS = ("round-robin", "least-connections", "least-response-time")
REQUESTS = 400


def open_loop(port, rate, count, path):
    """Poisson arrivals at `rate` per second, each on a connection of its own, whatever the
    answers' pace (as a replay assumes): returns the latencies."""
    rng = random.Random(5)
    starts, t = [], 0.0
    for _ in range(count):
        t += rng.expovariate(rate)
        starts.append(t)
    latencies, lock = [], threading.Lock()
    began = time.monotonic()

    def one(at):
        time.sleep(max(0.0, began + at - time.monotonic()))
        sent = time.monotonic()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        conn.close()
        with lock:
            latencies.append((response.status, time.monotonic() - sent))

    with ThreadPoolExecutor(max_workers=96) as pool:
        list(pool.map(one, starts))
    assert all(status == 200 for status, _ in latencies), latencies
    return [seconds for _, seconds in latencies]


class ReplayRanksLikeTheLiveRuns(unittest.TestCase):
    """Three servers working one request at a time, one eight times slower (as in
    test_balancing.LoadAware), at 100 requests a second: the slow one can take 25, so blind
    turns (33 each) pile requests up behind it, and load-aware algorithms steer around it."""

    @classmethod
    def setUpClass(cls):
        cls.backends = [start_backend(n, ms, "serial") for n, ms in (("a", 5), ("b", 5), ("c", 40))]
        cls.dir = tempfile.TemporaryDirectory()
        cls.live = {}
        for balance in ALGORITHMS:
            log = os.path.join(cls.dir.name, f"{balance}.log")
            port, usher = start_usher([p for p, _ in cls.backends], extra=f"access_log: {log}\n",
                                      pool_extra=f"    balance: {balance}\n")
            try:
                cls.live[balance] = p99(open_loop(port, rate=100, count=REQUESTS, path="/work"))
            finally:
                usher.signal(signal.SIGTERM)  # a stop that writes out the log's last lines
                usher.wait(15)
                usher.stop()

    @classmethod
    def tearDownClass(cls):
        for _, b in cls.backends:
            b.stop()
        cls.dir.cleanup()

    def replay(self, log, *extra):
        run = subprocess.run([USHER, "simulate", "--replay", log, "--concurrency", "1",
                              "--format", "json", *extra],
                             capture_output=True, text=True, timeout=120)
        self.assertEqual(run.returncode, 0, run.stderr)
        return json.loads(run.stdout)

    def test_the_replay_ranks_the_algorithms_as_the_live_runs_did(self):
        # The log of the least-connections run: the slow server was rarely queued for, so its
        # durations are its service times. Its arrivals are the load generator's.
        out = self.replay(os.path.join(self.dir.name, "least-connections.log"),
                          "--algorithms", ",".join(ALGORITHMS))
        replayed = {r["algorithm"]: r["p99_s"] for r in out["results"]}
        print("\np99 live:   " + ", ".join(f"{a} {self.live[a] * 1000:.0f} ms" for a in ALGORITHMS))
        print("p99 replay: " + ", ".join(f"{a} {replayed[a] * 1000:.0f} ms" for a in ALGORITHMS))
        self.assertEqual(out["log"]["replayed"], REQUESTS)
        self.assertEqual(out["log"]["unusable"], 0)
        # Round-robin last, in both: the slow server's queue decides its p99.
        for fair in ("least-connections", "least-response-time"):
            self.assertLess(self.live[fair], self.live["round-robin"])
            self.assertLess(replayed[fair] * 2, replayed["round-robin"], replayed)

    def test_the_survey_sees_the_slow_server(self):
        out = self.replay(os.path.join(self.dir.name, "round-robin.log"), "--algorithms", "round-robin")
        speeds = {b["name"]: b["speed"] for b in out["log"]["backends"]}
        self.assertEqual(len(speeds), 3, speeds)
        slowest = min(speeds.values())
        self.assertLess(slowest, 0.3, speeds)  # 5 ms against 40 ms of work: about 1/8
        self.assertEqual(sorted(speeds.values())[1:], [speeds[n] for n in sorted(speeds, key=speeds.get)][1:])

    def test_what_ifs_more_traffic_cost_latency_and_more_servers_none(self):
        log = os.path.join(self.dir.name, "least-connections.log")

        def p99_of(*extra):
            return self.replay(log, "--algorithms", "least-connections", *extra)["results"][0]["p99_s"]

        base = p99_of()
        self.assertGreater(p99_of("--speed", "3"), base * 1.5)
        self.assertGreater(p99_of("--servers", "1", "--speed", "2"), base * 1.5)  # past its capacity
        self.assertLessEqual(p99_of("--servers", "6"), base * 1.05)

    def test_bad_lines_are_counted_and_shown_never_fatal(self):
        with open(os.path.join(self.dir.name, "least-connections.log")) as f:
            good = f.read()
        mixed = os.path.join(self.dir.name, "mixed.log")
        with open(mixed, "w") as f:
            f.write("garbage\n" + good + '{"time": "now"}\n' + "\x00\x01\n" * 10)
        run = subprocess.run([USHER, "simulate", "--replay", mixed, "--algorithms", "round-robin"],
                             capture_output=True, text=True, timeout=120)
        self.assertEqual(run.returncode, 0, run.stderr)
        self.assertIn(f"{REQUESTS} replayed", run.stdout)
        self.assertIn("12 unusable", run.stdout)
        self.assertIn(f"{mixed}:1: skipped: neither a JSON object nor a combined-format line", run.stderr)
        self.assertEqual(run.stderr.count("skipped"), 5)  # the first few only

    def test_a_terminal_gets_a_progress_bar_and_a_pipe_none(self):
        log = os.path.join(self.dir.name, "least-connections.log")
        command = f"{USHER} simulate --replay {log} --algorithms round-robin"
        # script(1) gives the command a terminal.
        tty = subprocess.run(["script", "-qec", command, "/dev/null"], capture_output=True, timeout=120)
        self.assertEqual(tty.returncode, 0, tty.stdout)
        self.assertIn(b"survey [", tty.stdout)
        self.assertIn(b"replay [##############################] 100%", tty.stdout)
        piped = subprocess.run(command.split(), capture_output=True, timeout=120)
        self.assertNotIn(b"[###", piped.stdout + piped.stderr)

    def test_unusable_input_is_a_clear_error(self):
        for args, message in (
                (["--replay", "/dev/zero"], "not a regular file"),
                (["--replay", "/nonexistent.log"], "No such file"),
                (["--replay", os.devnull], "not a regular file"),
                (["--servers", "2"], "--servers requires --replay"),
                ([], "give --scenario"),
        ):
            run = subprocess.run([USHER, "simulate", *args], capture_output=True, text=True, timeout=30)
            self.assertNotEqual(run.returncode, 0, args)
            self.assertIn(message, run.stderr + run.stdout, args)


if __name__ == "__main__":
    unittest.main()
