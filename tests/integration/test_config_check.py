"""`usher check`, `--version`, `--help` and config errors as FILE:LINE:COL."""
import os
import resource
import subprocess
import tempfile
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
    ("locality_aware without locality", VALID.replace("web\n    backends:", "web\n    locality_aware: true\n    backends:"),
     ":8:21: locality_aware needs the top-level 'locality: { zone, region }' that says where this usher runs"),
    ("locality_aware not a flag", "locality: { zone: a, region: r }\n" + VALID.replace(
        "web\n    backends:", "web\n    locality_aware: 1.4\n    backends:"),
     ":9:21: locality_aware must be true or false, not '1.4'"),
    ("bad zone name", VALID.replace("- 127.0.0.1:9001", "- { address: 127.0.0.1:9001, zone: eu/west }"),
     ":9:42: zone must be 1 to 64 letters, digits, '.', '_' or '-', not 'eu/west'"),
    # A key given twice would otherwise keep its first value in silence.
    ("duplicate top-level key", VALID.replace("workers: 1\n", "workers: 1\nworkers: 2\n"),
     ":2:1: duplicate key 'workers' (first at 1:1)"),
    ("two pools blocks", VALID + "pools: []\n", ":10:1: duplicate key 'pools' (first at 6:1)"),
    ("duplicate key in a backend", VALID.replace("- 127.0.0.1:9001", "- { address: 127.0.0.1:9001, weight: 1, weight: 2 }"),
     ":9:47: duplicate key 'weight' (first at 9:36)"),
    ("duplicate key in a route's match", VALID.replace("pool: web", "routes:\n      - match: { host: a, host: b }\n        pool: web", 1),
     ":6:27: duplicate key 'host' (first at 6:18)"),
    # Messages name the range that is accepted.
    ("weight not a number", VALID.replace("- 127.0.0.1:9001", "- { address: 127.0.0.1:9001, weight: heavy }"),
     ":9:44: weight must be a whole number from 1 to 1000, not 'heavy'"),
    ("weight zero", VALID.replace("- 127.0.0.1:9001", "- { address: 127.0.0.1:9001, weight: 0 }"),
     ":9:44: weight must be a whole number from 1 to 1000, not '0'"),
    ("empty file", "", ":1:1: the configuration is empty"),
    ("comments only", "# nothing yet\n", ":1:1: the configuration is empty"),
    ("deep nesting", "[" * 20000 + "]" * 20000 + "\n", ":1:101: nesting deeper than 100 levels"),
]

SIXTEEN_MIB = 16 * 1024 * 1024


def run(*args):
    return subprocess.run([USHER, *args], capture_output=True, text=True, timeout=10)


def limit_memory():
    resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))


def run_limited(*args):
    """Under 1 GiB of address space, as a file that is read whole would otherwise take all memory
    (not under AddressSanitizer, whose shadow memory needs more)."""
    limit = None if os.environ.get("USHER_SANITIZED") else limit_memory
    return subprocess.run([USHER, *args], capture_output=True, text=True, timeout=10, preexec_fn=limit)


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

    def test_a_control_character_is_one_line_at_its_position(self):
        path = write_config("workers: 1\0\nlisteners: []\n")
        result = run("check", "-c", path)
        self.assertEqual(result.returncode, 1)
        self.assertEqual(result.stderr.splitlines(), [path + ":1:11: control character '\\x00': YAML allows only tab, "
                         "line feed and carriage return (a double-quoted string can hold others as escapes)"])
        # A line break given as an escape in a quoted value is echoed escaped.
        path = write_config(VALID.replace("    pool: web", '    pool: "w\\neb"'))
        result = run("check", "-c", path)
        self.assertEqual(result.stderr.splitlines(), [path + ":5:11: pool 'w\\neb' is not defined"])

    def test_only_a_regular_file_is_read(self):
        with tempfile.TemporaryDirectory() as d:
            fifo = os.path.join(d, "fifo")
            os.mkfifo(fifo)
            for path, kind in ((d, "a directory"), ("/dev/zero", "a character device"), (fifo, "a FIFO")):
                for command in ("check", "run"):
                    with self.subTest(path=path, command=command):
                        result = run_limited(command, "-c", path)
                        self.assertEqual(result.returncode, 1, result.stderr)
                        self.assertEqual(result.stderr, f"{path}:1:1: is {kind}, not a regular file\n")

    def test_a_file_over_16_mib_is_refused_unread(self):
        path = write_config(VALID)
        os.truncate(path, SIXTEEN_MIB + 1)
        result = run_limited("check", "-c", path)
        self.assertEqual(result.returncode, 1)
        self.assertEqual(result.stderr, f"{path}:1:1: is {SIXTEEN_MIB + 1} bytes, over the limit of 16 MiB "
                         f"({SIXTEEN_MIB} bytes)\n")
        with open(path, "w") as f:
            f.write(VALID + "#" * (SIXTEEN_MIB - len(VALID) - 1) + "\n")
        result = run("check", "-c", path)
        self.assertEqual(result.returncode, 0, result.stderr)

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
