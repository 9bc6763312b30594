"""Routing by where clients are: `geo` conditions on a country database (MaxMind DB format)
and `client_cidr_file` prefix lists. Each test builds its databases itself with
tests/helpers/make_mmdb.pl (libmaxmind-db-writer-perl); clients are named through a trusted
proxy's X-Forwarded-For from 127.0.0.1."""
import http.client
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import unittest

from harness import USHER, Process, free_port, start_backend

HERE = os.path.dirname(os.path.abspath(__file__))
MAKE_MMDB = os.path.join(HERE, "..", "helpers", "make_mmdb.pl")

DE, US, NETS = "192.0.2.10", "198.51.100.10", "203.0.113.5"  # TEST-NET-1, -2, -3
ELSEWHERE = "10.1.1.1"


def make_mmdb(path, *entries):
    """A country database at `path` (written beside it and renamed into place)."""
    subprocess.run(["/usr/bin/perl", MAKE_MMDB, path, *entries], check=True, capture_output=True)


def get(port, client=None, path="/", source="127.0.0.1", conn=None):
    """(status, body, response headers) of one GET; `client` goes in X-Forwarded-For."""
    own = conn is None
    if own:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5, source_address=(source, 0))
    try:
        headers = {"X-Forwarded-For": client} if client else {}
        headers["X-Geo-Country"] = "spoofed"  # replaced by the route's `set`
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        return response.status, response.read().decode(), response
    finally:
        if own:
            conn.close()


def wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


class GeoIpTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.backends = {name: start_backend(name) for name in ("eu", "us", "nets", "other")}

    @classmethod
    def tearDownClass(cls):
        for _, process in cls.backends.values():
            process.stop()

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="usher-geoip-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.mmdb = os.path.join(self.dir, "country.mmdb")
        self.nets = os.path.join(self.dir, "clients.txt")
        make_mmdb(self.mmdb, f"{DE}/24=DE:EU", f"{US}/24=US:NA", "2001:db8::/32=FR:EU")
        with open(self.nets, "w") as f:
            f.write("# the office\n203.0.113.0/24\n\n")

    def config(self, port, database="country.mmdb"):
        pools = "".join(f"  - {{ name: {name}, backends: [127.0.0.1:{p}] }}\n"
                        for name, (p, _) in self.backends.items())
        text = (f"workers: 2\n"
                f"geoip: {{ database: {database} }}\n"
                f"access_log: {self.dir}/access.log\n"
                f"listeners:\n"
                f"  - name: web\n"
                f"    listen: 127.0.0.1:{port}\n"
                f"    trusted_proxies: [127.0.0.1]\n"
                f"    routes:\n"
                f"      - match: {{ client_cidr_file: clients.txt }}\n"
                f"        pool: nets\n"
                f"      - match: {{ geo: {{ country: [DE, FR] }} }}\n"
                f"        pool: eu\n"
                f"        request_headers: {{ set: {{ X-Geo-Country: \"${{geo_country}}\" }} }}\n"
                f"      - match: {{ geo: {{ continent: [NA] }} }}\n"
                f"        pool: us\n"
                f"        request_headers: {{ set: {{ X-Geo-Country: \"${{geo_country}}\" }} }}\n"
                f"      - pool: other\n"
                f"pools:\n{pools}")
        path = os.path.join(self.dir, "usher.yaml")
        with open(path, "w") as f:
            f.write(text)
        return path

    def start(self):
        port = free_port()
        usher = Process([USHER, "run", "-c", self.config(port)], port=port)
        self.addCleanup(usher.stop)
        return port, usher

    def test_clients_in_different_countries_reach_different_pools(self):
        port, usher = self.start()
        self.assertEqual(get(port, DE)[:2], (200, "eu"))
        self.assertEqual(get(port, US)[:2], (200, "us"))
        self.assertEqual(get(port, "2001:db8::7")[:2], (200, "eu"))
        self.assertEqual(get(port, ELSEWHERE)[:2], (200, "other"))  # not in the database
        self.assertEqual(get(port)[:2], (200, "other"))  # 127.0.0.1 itself
        # The real client is the last address no trusted proxy added: a client's own claim
        # before it does not count.
        self.assertEqual(get(port, f"{DE}, {US}")[:2], (200, "us"))
        # From a peer that is not a trusted proxy, X-Forwarded-For is not believed.
        self.assertEqual(get(port, DE, source="127.0.0.2")[:2], (200, "other"))
        # ${geo_country} in the header the backend sees, the client's own one replaced.
        echoed = get(port, DE, path="/echo")[1]
        self.assertIn("X-Geo-Country: DE\r\n", echoed)
        self.assertNotIn("spoofed", echoed)
        self.assertIn("X-Geo-Country: US\r\n", get(port, US, path="/echo")[1])
        # The access log says where each client was.
        log = os.path.join(self.dir, "access.log")

        def logged():
            if not os.path.exists(log):
                return ""
            with open(log) as f:
                return f.read()
        self.assertTrue(wait_for(lambda: logged().count("\n") >= 9), logged())
        lines = logged()
        self.assertIn(f'"client":"{DE}"', lines)
        self.assertRegex(lines, r'"client":"192\.0\.2\.10".*"geo_country":"DE"')
        self.assertRegex(lines, r'"client":"198\.51\.100\.10".*"geo_country":"US"')
        self.assertRegex(lines, r'"client":"10\.1\.1\.1".*"geo_country":""')

    def test_a_database_swapped_on_disk_during_load_loses_no_request(self):
        """2000 requests from 4 threads on keep-alive connections, at most 60 s; the database is
        replaced once by renaming a new file into place and once by writing over the file in place
        (as `cp` does); every request is answered 200, and after each swap the mapping changes."""
        port, usher = self.start()
        # Both new databases are made before the run, so that each swap is one quick step in it.
        renamed = os.path.join(self.dir, "renamed.mmdb")
        staged = os.path.join(self.dir, "staged.mmdb")
        make_mmdb(renamed, f"{DE}/24=US:NA", f"{US}/24=US:NA")
        make_mmdb(staged, f"{DE}/24=DE:EU")
        total, threads = 2000, 4
        results, lock = [], threading.Lock()
        deadline = time.monotonic() + 60

        def client():
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            try:
                for _ in range(total // threads):
                    if time.monotonic() > deadline:
                        break
                    try:
                        status, body, _ = get(port, DE, conn=conn)
                    except (OSError, http.client.HTTPException) as e:
                        status, body = 0, repr(e)
                        conn.close()
                        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                    with lock:
                        results.append((status, body))
                    time.sleep(0.005)
            finally:
                conn.close()

        workers = [threading.Thread(target=client) for _ in range(threads)]
        for w in workers:
            w.start()

        def done():
            with lock:
                return len(results)

        def last(body):
            return lambda: get(port, DE)[1] == body

        try:
            self.assertTrue(wait_for(lambda: done() >= total // 5, 30))
            os.rename(renamed, self.mmdb)
            self.assertTrue(wait_for(last("us")), usher.output())
            self.assertTrue(wait_for(lambda: done() >= total // 2, 30))
            with open(staged, "rb") as source, open(self.mmdb, "r+b") as target:
                target.truncate(0)  # the same inode, written over as cp does
                target.write(source.read())
            self.assertTrue(wait_for(last("eu")), usher.output())
            self.assertLess(done(), total, "both swaps must come while the load runs")
        finally:
            for w in workers:
                w.join(timeout=70)
        failed = [r for r in results if r[0] != 200]
        self.assertEqual(failed, [])
        self.assertEqual(len(results), total, "the load run ran out of time")
        bodies = {body for _, body in results}
        self.assertEqual(bodies, {"eu", "us"})
        self.assertIn("changed on disk", usher.output())
        self.assertIsNone(usher.proc.poll())

    def test_a_corrupt_database_on_disk_or_at_a_reload_keeps_the_old_one(self):
        port, usher = self.start()
        self.assertEqual(get(port, DE)[1], "eu")
        partial = self.mmdb + ".new"
        with open(partial, "wb") as f:
            f.write(b"not a database" * 100)
        os.rename(partial, self.mmdb)
        self.assertTrue(wait_for(lambda: "the old database stays in use" in usher.output()),
                        usher.output())
        self.assertEqual(get(port, DE)[1], "eu")
        usher.signal(signal.SIGHUP)
        self.assertTrue(wait_for(lambda: "reload refused" in usher.output()), usher.output())
        self.assertIn("The MaxMind DB file contains invalid metadata; nothing was reloaded",
                      usher.output())
        self.assertEqual(get(port, DE)[1], "eu")
        self.assertEqual(get(port, US)[1], "us")

    def test_a_client_cidr_file_follows_a_reload(self):
        port, usher = self.start()

        def write_list(text):  # renamed into place: a reload never reads half of it
            with open(self.nets + ".new", "w") as f:
                f.write(text)
            os.rename(self.nets + ".new", self.nets)

        def reload(count):
            """SIGHUP, then wait for the `count`th reload's outcome (signals sent while one is
            pending would merge into one)."""
            usher.signal(signal.SIGHUP)
            self.assertTrue(wait_for(lambda: usher.output().count("reload: serving generation")
                                     + usher.output().count("reload refused") >= count),
                            usher.output())

        self.assertEqual(get(port, NETS)[1], "nets")
        self.assertEqual(get(port, ELSEWHERE)[1], "other")
        write_list("10.0.0.0/8  # the new office\n")
        time.sleep(0.3)
        self.assertEqual(get(port, ELSEWHERE)[1], "other")  # read with the configuration only
        reload(1)
        self.assertEqual(get(port, ELSEWHERE)[1], "nets")
        self.assertEqual(get(port, NETS)[1], "other")
        # After a reload the new database serves (the watch on its file may take it first).
        make_mmdb(self.mmdb, f"{US}/24=DE:EU")
        reload(2)
        self.assertTrue(wait_for(lambda: get(port, US)[1] == "eu"), usher.output())
        # A broken list refuses the reload and names its line; the old list stays.
        write_list("10.0.0.0/8\n10.0.0.0/40\n")
        reload(3)
        self.assertIn("reload refused", usher.output())
        self.assertIn(f"{self.nets}:2:1: '10.0.0.0/40' has an invalid prefix length", usher.output())
        self.assertEqual(get(port, ELSEWHERE)[1], "nets")

    def check(self, database):
        config = self.config(free_port(), database)
        return config, subprocess.run([USHER, "check", "-c", config], capture_output=True, text=True,
                                      timeout=30)

    def test_check_fails_clearly_on_a_missing_or_corrupt_database(self):
        config, ok = self.check("country.mmdb")
        self.assertEqual(ok.returncode, 0, ok.stderr)
        config, missing = self.check("missing.mmdb")
        self.assertEqual(missing.returncode, 1)
        self.assertEqual(missing.stderr,
                         f"{config}:2:20: geoip database '{self.dir}/missing.mmdb': Error opening the "
                         f"specified MaxMind DB file (No such file or directory)\n")
        corrupt = os.path.join(self.dir, "corrupt.mmdb")
        with open(corrupt, "wb") as f:
            f.write(os.urandom(2048))
        config, bad = self.check("corrupt.mmdb")
        self.assertEqual(bad.returncode, 1)
        self.assertEqual(bad.stderr, f"{config}:2:20: geoip database '{corrupt}': The MaxMind DB file "
                                     f"contains invalid metadata\n")
        # `usher run` refuses to start with it, saying the same.
        run = subprocess.run([USHER, "run", "-c", config], capture_output=True, text=True, timeout=30)
        self.assertEqual(run.returncode, 1)
        self.assertIn("The MaxMind DB file contains invalid metadata", run.stdout + run.stderr)


if __name__ == "__main__":
    unittest.main()
