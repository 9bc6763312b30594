"""A keep-alive request through usher makes no heap allocation in steady state: routing, header
edits, a sticky pool, metrics and the access log included. usher counts operator new calls on
its worker threads (usher_worker_heap_allocations_total)."""
import http.client
import os
import re
import tempfile
import unittest

from harness import USHER, Process, free_port, start_backend, write_config


class SteadyState(unittest.TestCase):
    def test_no_heap_allocation_per_request(self):
        backends = [start_backend(n) for n in ("a", "b")]
        port, admin = free_port(), free_port()
        log_dir = tempfile.TemporaryDirectory()
        lines = "".join(f"      - 127.0.0.1:{p}\n" for p, _ in backends)
        config = write_config(f"""workers: 2
admin: {{ listen: 127.0.0.1:{admin} }}
access_log: {os.path.join(log_dir.name, "access.log")}
listeners:
  - name: web
    listen: 127.0.0.1:{port}
    routes:
      - match: {{ path_prefix: /api/, headers: [{{ name: X-Tier, regex: "^g" }}] }}
        pool: web
        strip_prefix: /api
        request_headers: {{ add: {{ X-Client: "${{client_ip}}" }} }}
        response_headers: {{ set: {{ X-Served-By: "${{backend}}" }} }}
      - pool: web
pools:
  - name: web
    balance: least-connections
    sticky: {{ cookie: SERVERID }}
    backends:
{lines}""")
        usher = Process([USHER, "run", "-c", config], port=port)
        try:
            clients = [http.client.HTTPConnection("127.0.0.1", port, timeout=5) for _ in range(4)]

            def load(count):
                for i in range(count):
                    conn = clients[i % len(clients)]
                    path = f"/api/items?n={i}" if i % 2 else f"/page/{i}"
                    conn.request("GET", path, headers={"X-Tier": "gold", "Cookie": "theme=dark"})
                    response = conn.getresponse()
                    response.read()
                    self.assertEqual(response.status, 200)

            def allocations():
                conn = http.client.HTTPConnection("127.0.0.1", admin, timeout=5)
                conn.request("GET", "/metrics")
                text = conn.getresponse().read().decode()
                conn.close()
                return sum(int(v) for v in re.findall(
                    r'^usher_worker_heap_allocations_total\{worker="\d+"\} (\d+)$', text, re.M))

            load(1000)  # warm-up: connections, buffers, coroutine frames and pools fill up
            before = allocations()
            load(2000)
            after = allocations()
            self.assertEqual(after - before, 0, f"{after - before} allocations in 2000 requests")
            for conn in clients:
                conn.close()
        finally:
            usher.stop()
            for _, b in backends:
                b.stop()
            log_dir.cleanup()


if __name__ == "__main__":
    unittest.main()
