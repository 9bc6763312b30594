"""`usher simulate`: the scenarios answer the classic questions the way the field expects."""
import json
import os
import subprocess
import tempfile
import unittest

from harness import USHER


def simulate(*args):
    result = subprocess.run([USHER, "simulate", *args], capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise AssertionError(result.stderr)
    return result.stdout


def results(scenario, algorithms, seed=None):
    args = ["--scenario", scenario, "--format", "json"]
    if algorithms:  # none: every algorithm
        args += ["--algorithms", ",".join(algorithms)]
    if seed is not None:
        args += ["--seed", str(seed)]
    out = json.loads(simulate(*args))
    return out, {r["algorithm"]: r for r in out["results"]}


class Scenarios(unittest.TestCase):
    def test_varying_durations_least_connections_and_response_time_beat_round_robin(self):
        _, r = results("varying-durations", ["round-robin", "least-connections", "least-response-time"])
        self.assertLess(r["least-connections"]["p99_s"], r["round-robin"]["p99_s"])
        self.assertLess(r["least-response-time"]["p99_s"], r["round-robin"]["p99_s"])

    def test_heterogeneous_weighted_beats_plain_round_robin(self):
        _, r = results("heterogeneous", ["round-robin", "weighted-round-robin"])
        self.assertLess(r["weighted-round-robin"]["p99_s"], r["round-robin"]["p99_s"])
        self.assertLessEqual(r["weighted-round-robin"]["dropped"], r["round-robin"]["dropped"])

    def test_skewed_clients_bounded_hash_is_more_even_than_ip_hash(self):
        _, r = results("skewed-clients", ["ip-hash", "hash-bounded"])
        self.assertEqual(set(r), {"ip-hash", "hash-bounded"})
        self.assertLess(r["hash-bounded"]["imbalance"], r["ip-hash"]["imbalance"])
        # Bounded loads: no server above c = 1.25 x the mean (plus the one request that tips it),
        # and no request dropped, where plain hashing overloads the hot clients' server.
        self.assertLess(r["hash-bounded"]["imbalance"], 1.25 + 0.05)
        self.assertGreater(r["ip-hash"]["imbalance"], 1.5)
        self.assertEqual(r["hash-bounded"]["dropped"], 0)

    def test_sticky_cart_recommends_an_algorithm_that_keeps_clients(self):
        out = simulate("--scenario", "sticky-cart", "--recommend")
        line = [l for l in out.splitlines() if l.startswith("recommend: ")][0]
        self.assertRegex(line, r"^recommend: (ip-hash|hash):")
        _, r = results("sticky-cart", ["ip-hash", "hash"])
        self.assertEqual([x["sticky_breaks"] for x in r.values()], [0, 0])
        self.assertTrue(line.endswith(", keeps every client on its server"), line)

    def test_when_every_algorithm_moves_clients_the_recommendation_says_how_many(self):
        # A server dies at 2 s: its clients must move whatever the algorithm, so none keeps every
        # client; the winner is the one that moves the fewest, and the line says so.
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "crash.yaml")
            with open(path, "w") as f:
                f.write("name: sticky-crash\nseed: 3\nrequests: 4000\narrival_rate: 1000\n"
                        "duration: { kind: exponential, mean: 0.01 }\nservers:\n  - { count: 3, concurrency: 8 }\n"
                        "events:\n  - { at: 2, server: 0, up: false }\nkeys: 200\nsticky: true\n")
            _, r = results(path, [])
            out = simulate("--scenario", path, "--recommend")
        self.assertTrue(all(x["sticky_breaks"] > 0 for x in r.values()), r)
        fewest = min(x["sticky_breaks"] for x in r.values())
        line = [l for l in out.splitlines() if l.startswith("recommend: ")][0]
        best = line.split(":")[1].strip()
        self.assertEqual(r[best]["sticky_breaks"], fewest, line)
        self.assertNotIn("keeps every client", line)
        self.assertTrue(line.endswith(f", moves clients to another server {fewest} times "
                                      "(every algorithm moved some)"), line)

    def test_zone_failure_shows_the_spill_per_zone_and_tier(self):
        out, r = results("zone-failure", None)
        self.assertEqual(set(r), {a for a in r})  # every algorithm ran
        self.assertEqual(len(r), 9)
        for name, result in r.items():
            phases = result["phases"]
            self.assertEqual([p["from_s"] for p in phases], [0, 30, 60, 90], name)
            self.assertEqual([p["what"] for p in phases],
                             ["start", "server 0 down", "server 1 down", "server 0 up, server 1 up"], name)

            def share(phase, zone):
                zones = phases[phase]["zones"]
                return zones[zone] / sum(zones.values())
            # All in zone a; one of its two servers down: 1.4 x 1/2 = 70 % stays (plus the second
            # before health checks notice); both down: zone b takes it all, zone c (another
            # region) nothing; back to zone a once they return.
            self.assertGreater(share(0, "a"), 0.99, name)
            self.assertGreater(share(1, "a"), 0.68, name)
            self.assertLess(share(1, "a"), 0.75, name)
            self.assertGreater(share(1, "b"), 0.25, name)
            self.assertLess(share(2, "a"), 0.01, name)
            self.assertGreater(share(2, "b"), 0.99, name)
            self.assertGreater(share(3, "a"), 0.95, name)
            for phase in phases:
                self.assertEqual(phase["zones"]["c"], 0, name)
                self.assertEqual(phase["tiers"]["other"], 0, name)
            self.assertEqual(phases[1]["tiers"]["zone"], phases[1]["zones"]["a"], name)
        table = simulate("--scenario", "zone-failure", "--algorithms", "round-robin")
        self.assertIn("requests per zone and tier (here: zone a, region r1)", table)
        self.assertRegex(table, r"from 30 s \(server 0 down\):\n  round-robin +zone a +7\d\.\d%")
        # A scenario file says where the balancer and its servers run.
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "zones.yaml")
            with open(path, "w") as f:
                f.write("name: zones\nrequests: 4000\narrival_rate: 200\nlocality: { zone: x, region: r }\n"
                        "servers:\n  - { count: 2, zone: x, region: r }\n  - { count: 2, zone: y, region: r }\n"
                        "events:\n  - { at: 5, server: 0, up: false }\n")
            _, mine = results(path, ["least-connections"])
            phases = mine["least-connections"]["phases"]
            self.assertEqual(phases[0]["zones"]["y"], 0)
            self.assertGreater(phases[1]["zones"]["y"], 0.2 * sum(phases[1]["zones"].values()))

    def test_json_shape_and_determinism(self):
        first, _ = results("server-crash", ["random", "power-of-two"], seed=7)
        second, _ = results("server-crash", ["random", "power-of-two"], seed=7)
        self.assertEqual(first, second)
        self.assertEqual(first["scenario"], "server-crash")
        self.assertEqual(first["seed"], 7)
        for r in first["results"]:
            for key in ("algorithm", "p50_s", "p99_s", "p999_s", "imbalance", "dropped"):
                self.assertIn(key, r)
        other, _ = results("server-crash", ["random"], seed=8)
        self.assertNotEqual(other["results"][0]["p99_s"], first["results"][0]["p99_s"])

    def test_scenario_list_and_file(self):
        listed = simulate("--scenario", "list")
        for name in ("uniform", "varying-durations", "sticky-cart", "heterogeneous", "independent-api",
                     "skewed-clients", "server-crash", "zone-failure"):
            self.assertIn(name, listed)
        with tempfile.TemporaryDirectory() as d:
            trace = os.path.join(d, "trace.csv")
            with open(trace, "w") as f:
                for i in range(200):
                    f.write(f"{i * 0.01},{0.5 if i % 10 == 0 else 0.01},{i % 7}\n")
            path = os.path.join(d, "s.yaml")
            with open(path, "w") as f:
                f.write(f"name: mine\ntrace: {trace}\nservers:\n  - {{count: 3, concurrency: 2}}\n")
            out, r = results(path, ["round-robin", "least-connections"])
            self.assertEqual(out["scenario"], "mine")
            self.assertLessEqual(r["least-connections"]["p99_s"], r["round-robin"]["p99_s"])

    def test_plot_writes_a_png(self):
        with tempfile.TemporaryDirectory() as d:
            png = os.path.join(d, "out.png")
            simulate("--scenario", "server-crash", "--algorithms", "round-robin,least-connections", "--plot", png)
            with open(png, "rb") as f:
                self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")

    def test_bad_input_is_a_clear_error(self):
        result = subprocess.run([USHER, "simulate", "--scenario", "nope"], capture_output=True, text=True)
        self.assertEqual(result.returncode, 1)
        self.assertIn("unknown scenario 'nope'", result.stderr)
        result = subprocess.run([USHER, "simulate", "--scenario", "uniform", "--algorithms", "fastest"],
                                capture_output=True, text=True)
        self.assertEqual(result.returncode, 1)
        self.assertIn("unknown algorithm 'fastest'", result.stderr)


if __name__ == "__main__":
    unittest.main()
