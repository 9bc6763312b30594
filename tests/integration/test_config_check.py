"""`usher check`, `--version`, `--help` and config errors as FILE:LINE:COL."""
import subprocess
import unittest

from harness import USHER, write_config

VALID = """workers: 1
listeners:
  - name: web
    listen: 127.0.0.1:8080
    pool: web
pools:
  - name: web
    backends:
      - 127.0.0.1:9001
"""

BROKEN = [
    ("unknown key", "workers: 1\nlistenerz: []\npools: []\n", ":2:1: unknown key 'listenerz'"),
    ("wrong type", "workers: [1]\nlisteners: []\npools: []\n", ":1:10: workers must be a single value"),
    ("bad address", VALID.replace("127.0.0.1:9001", "127.0.0.1:port"), ":9:9: invalid address '127.0.0.1:port'"),
    ("duplicate name", VALID + "  - name: web\n    backends: [127.0.0.1:1]\n", ":10:11: duplicate pool name 'web'"),
    ("dangling pool", VALID.replace("pool: web", "pool: api"), ":5:11: pool 'api' is not defined"),
    ("bad duration", "timeouts: { client_idle: 5 sec }\n" + VALID, ":1:26: client_idle: invalid duration '5 sec'"),
    ("zero duration", "timeouts: { drain: 0s }\n" + VALID, ":1:20: drain must be above 0"),
    ("syntax", "listeners: [\n", ":2:1:"),
    ("bad regex", VALID.replace("pool: web", "routes:\n      - match: { path_regex: \"(x\" }\n        pool: web"),
     ":6:30: invalid regular expression '(x'"),
    ("unreachable route", VALID.replace("pool: web", "routes:\n      - pool: web\n      - pool: web"),
     ":7:9: this route is never used"),
    ("two actions", VALID.replace("pool: web", "routes:\n      - { pool: web, respond: { status: 200 } }"),
     ":6:9: a route needs exactly one of 'pool', 'redirect' and 'respond'"),
    ("owned header", VALID.replace("pool: web", "routes:\n      - { pool: web, request_headers: { set: { Via: x } } }"),
     ":6:48: Via is written by usher itself"),
    ("bad variable", VALID.replace("pool: web", "routes:\n      - { pool: web, request_headers: { add: { X-A: '${backend}' } } }"),
     ":6:53: unknown variable in '${backend}'"),
    ("bad trusted proxy", VALID.replace("pool: web", "pool: web\n    trusted_proxies: [10.0.0.0/33]"),
     ":6:23: '10.0.0.0/33' has an invalid prefix length"),
    # Keys that would be ignored where they stand.
    ("hash_key without hashing", VALID.replace("web\n    backends:", "web\n    balance: random\n    hash_key: uri\n    backends:"),
     ":9:15: hash_key has no effect with balance 'random'"),
    ("hash_key with ip-hash", VALID.replace("web\n    backends:", "web\n    balance: ip-hash\n    hash_key: header:X-User\n    backends:"),
     ":9:15: ip-hash always hashes the client address; to hash 'header:X-User' use balance: hash"),
    ("balance factor without bounded loads", VALID.replace("web\n    backends:", "web\n    balance: hash\n    hash_balance_factor: 2\n    backends:"),
     ":9:26: hash_balance_factor has no effect with balance 'hash'"),
    ("retry budget on a route", VALID.replace("pool: web", "routes:\n      - pool: web\n        retries: { budget: 5 }"),
     ":7:28: retries.budget is the pool's, shared by all its routes: set it in pool 'web'"),
]


def run(*args):
    return subprocess.run([USHER, *args], capture_output=True, text=True, timeout=10)


class Check(unittest.TestCase):
    def test_valid_config(self):
        path = write_config(VALID)
        result = run("check", "-c", path)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("configuration is valid", result.stdout)

    def test_each_broken_config_names_line_and_column(self):
        for name, text, expected in BROKEN:
            with self.subTest(name):
                path = write_config(text)
                result = run("check", "-c", path)
                self.assertEqual(result.returncode, 1)
                self.assertIn(path + expected, result.stderr)

    def test_all_errors_are_printed(self):
        path = write_config(VALID.replace("127.0.0.1:9001", "nope") + "bogus: 1\n")
        result = run("check", "-c", path)
        self.assertEqual(result.returncode, 1)
        self.assertEqual(len(result.stderr.strip().splitlines()), 2, result.stderr)

    def test_run_refuses_a_broken_config(self):
        path = write_config("workers: x\n")
        result = run("run", "-c", path)
        self.assertEqual(result.returncode, 1)
        self.assertIn(path + ":1:10:", result.stderr)

    def test_quick_mode_validates_its_arguments(self):
        result = run("proxy", "--listen", "127.0.0.1:0", "--to", "nowhere")
        self.assertEqual(result.returncode, 1)
        self.assertIn("invalid address 'nowhere'", result.stderr)

    def test_version_and_help(self):
        result = run("--version")
        self.assertEqual(result.returncode, 0)
        self.assertRegex(result.stdout, r"^usher \d+\.\d+\.\d+")
        result = run("--help")
        self.assertEqual(result.returncode, 0)
        for sub in ("run", "check", "proxy"):
            self.assertIn(sub, result.stdout)


if __name__ == "__main__":
    unittest.main()
