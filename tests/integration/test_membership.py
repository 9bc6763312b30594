"""Backends change at run time through the admin API, under load and without errors: one added
takes traffic within a second (and is health-checked), a weight change shifts the split, and one
removed gets no new request while nothing fails."""
import collections
import http.client
import json
import subprocess
import threading
import time
import unittest

from harness import USHER, free_port, start_backend, start_usher


class Membership(unittest.TestCase):
    def test_add_weight_remove_under_load(self):
        a, b = start_backend("a"), start_backend("b")
        c_port = free_port()
        admin_port = free_port()
        port, usher = start_usher(
            [a[0], b[0]], workers=2,
            extra=f"admin: {{ listen: 127.0.0.1:{admin_port} }}\n",
            pool_extra="    balance: weighted-round-robin\n"
                       "    health: { interval: 300ms, timeout: 200ms, fall: 2, rise: 1 }\n")
        ctl = [USHER, "ctl", "--admin", f"127.0.0.1:{admin_port}"]
        seen = []  # (time, status, body) of every request
        stop = threading.Event()

        def load():  # bounded: at most 40 000 requests per connection
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            for _ in range(40000):
                if stop.is_set():
                    break
                conn.request("GET", "/")
                response = conn.getresponse()
                seen.append((time.monotonic(), response.status, response.read().decode()))
            conn.close()

        def since(t):
            return collections.Counter(body for at, _, body in seen if at >= t)

        threads = [threading.Thread(target=load) for _ in range(4)]
        for t in threads:
            t.start()
        c = None
        try:
            time.sleep(0.5)
            c = start_backend("c", port=c_port)
            added_at = time.monotonic()
            out = subprocess.run(ctl + ["add", "web", f"127.0.0.1:{c_port}"], capture_output=True, text=True)
            self.assertEqual(out.returncode, 0, out.stderr)
            self.assertEqual(json.loads(out.stdout)["state"], "serving")
            time.sleep(1.0)
            first_c = min(at for at, _, body in seen if body == "c")
            self.assertLess(first_c - added_at, 1.0)

            # Weights 3 (a) : 1 (b) : 1 (c).
            self.assertEqual(subprocess.run(ctl + ["weight", "web", f"127.0.0.1:{a[0]}", "3"]).returncode, 0)
            time.sleep(0.2)
            mark = time.monotonic()
            time.sleep(1.5)
            split = since(mark)
            total = sum(split.values())
            self.assertGreater(total, 100)
            self.assertAlmostEqual(split["a"] / total, 0.6, delta=0.05)

            # Remove b: no request fails, b gets nothing new.
            b_address = f"127.0.0.1:{b[0]}"
            self.assertEqual(subprocess.run(ctl + ["remove", "web", b_address]).returncode, 0)
            time.sleep(0.3)
            mark = time.monotonic()
            time.sleep(1.0)
            self.assertEqual(since(mark)["b"], 0)
            self.assertGreater(since(mark)["c"], 0)
            pools = json.loads(subprocess.run(ctl + ["pools"], capture_output=True, text=True).stdout)
            names = [x["name"] for x in pools["pools"][0]["backends"]]
            self.assertEqual(names, [f"127.0.0.1:{a[0]}", f"127.0.0.1:{c_port}"])

            # The added backend is health-checked: stopped, it leaves the pool.
            c[1].stop()
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline:
                pools = json.loads(subprocess.run(ctl + ["pools"], capture_output=True, text=True).stdout)
                if not pools["pools"][0]["backends"][1]["healthy"]:
                    break
                time.sleep(0.1)
            self.assertFalse(pools["pools"][0]["backends"][1]["healthy"])
        finally:
            stop.set()
            for t in threads:
                t.join()
            usher.stop()
            for _, p in (a, b) + ((c,) if c else ()):
                p.stop()
        self.assertGreater(len(seen), 1000)
        self.assertEqual([s for _, s, _ in seen if s != 200], [])


if __name__ == "__main__":
    unittest.main()
