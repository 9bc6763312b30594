"""A keep-alive request through usher makes no heap allocation in steady state: routing, header
edits, a sticky pool, metrics and the access log included, and with many requests in flight at
once. usher counts its worker threads' heap allocations (usher_worker_heap_allocations_total):
operator new, and what its frame and buffer pools take from malloc."""
import http.client
import os
import re
import socket
import tempfile
import unittest

from harness import USHER, Process, free_port, start_backend, start_usher, write_config


def allocations(admin):
    conn = http.client.HTTPConnection("127.0.0.1", admin, timeout=5)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    conn.close()
    return sum(int(v) for v in re.findall(
        r'^usher_worker_heap_allocations_total\{worker="\d+"\} (\d+)$', text, re.M))


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

            load(1000)  # warm-up: connections, buffers, coroutine frames and pools fill up
            before = allocations(admin)
            load(2000)
            after = allocations(admin)
            self.assertEqual(after - before, 0, f"{after - before} allocations in 2000 requests")
            for conn in clients:
                conn.close()
        finally:
            usher.stop()
            for _, b in backends:
                b.stop()
            log_dir.cleanup()

    def test_no_heap_allocation_with_many_requests_in_flight(self):
        # Clients each with a request waiting on a slow backend at once: more buffers in use than
        # an idle worker keeps, taken and returned every round. The warm-up runs more at once than
        # the measured rounds, so that how many were in flight at the busiest moment (which
        # decides what the pools hold) cannot grow after it.
        backends = [start_backend(n) for n in ("a", "b")]
        admin = free_port()
        port, usher = start_usher([p for p, _ in backends],
                                  extra=f"admin: {{ listen: 127.0.0.1:{admin} }}\n")
        clients = []
        try:
            clients = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(200)]

            def round_trip(count):
                for s in clients[:count]:
                    s.sendall(b"GET /sleep?ms=300 HTTP/1.1\r\nHost: t\r\n\r\n")
                for s in clients[:count]:
                    response = b""
                    while not response.endswith(b"\r\n\r\na") and not response.endswith(b"\r\n\r\nb"):
                        chunk = s.recv(4096)
                        self.assertTrue(chunk, "connection closed")
                        response += chunk
                    self.assertTrue(response.startswith(b"HTTP/1.1 200"), response[:100])

            for _ in range(3):
                round_trip(200)  # warm-up: upstream connections, buffers, frames
            before = allocations(admin)
            for _ in range(4):
                round_trip(100)
            after = allocations(admin)
            self.assertEqual(after - before, 0, f"{after - before} allocations in 400 requests")
        finally:
            for s in clients:
                s.close()
            usher.stop()
            for _, b in backends:
                b.stop()


if __name__ == "__main__":
    unittest.main()
