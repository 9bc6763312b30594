"""Proxying through the real usher binary to real backend processes."""
import base64
import collections
import hashlib
import http.client
import os
import ssl
import time
import unittest

from harness import (SCHEME, ProxyTestCase, backend_stats, connect, exchange, http_connection,
                     read_until_close, send_while_reading, shutdown_write, status_of)


class Distribution(ProxyTestCase):
    def test_round_robin_lands_100_each_and_reuses_upstream_connections(self):
        # 30 client connections one after another, 10 requests each: the backends see the
        # connections usher keeps in its pool, not one per client connection.
        before = [backend_stats(p) for p in self.backend_ports]
        counts = collections.Counter()
        clients = 30
        for _ in range(clients):
            conn = http_connection(self.port)
            for _ in range(10):
                conn.request("GET", "/")
                response = conn.getresponse()
                self.assertEqual(response.status, 200)
                counts[response.read().decode()] += 1
            conn.close()
        self.assertEqual(counts, {"a": 100, "b": 100, "c": 100})
        after = [backend_stats(p) for p in self.backend_ports]
        # Each /stats call opens a connection of its own (one per backend, before and after).
        new_connections = [a["connections"] - b["connections"] - 1 for a, b in zip(after, before)]
        new_requests = [a["requests"] - b["requests"] - 1 for a, b in zip(after, before)]
        self.assertEqual(new_requests, [100, 100, 100])
        # One upstream connection per backend (one worker, one request at a time) serves every
        # client connection's turns.
        self.assertEqual(new_connections, [1, 1, 1], f"{new_connections} upstream connections "
                         f"for {clients} client connections")


class Forwarding(ProxyTestCase):
    def get(self, path, headers=None, method="GET"):
        conn = http_connection(self.port)
        conn.request(method, path, headers=headers or {})
        response = conn.getresponse()
        body = response.read()
        conn.close()
        return response, body

    def test_forwarding_fields_and_hop_by_hop_removal(self):
        response, body = self.get("/echo", {"Connection": "keep-alive, X-Secret", "X-Secret": "1",
                                            "Keep-Alive": "timeout=5", "TE": "trailers", "X-Kept": "yes",
                                            "X-Forwarded-For": "203.0.113.9"})
        self.assertEqual(response.status, 200)
        head = body.decode()
        self.assertIn("X-Kept: yes\r\n", head)
        # An untrusted client's own X-Forwarded-For is replaced, not believed.
        self.assertNotIn("203.0.113.9", head)
        self.assertIn("X-Forwarded-For: 127.0.0.1\r\n", head)
        self.assertIn(f"X-Forwarded-Proto: {SCHEME}\r\n", head)
        self.assertIn("Via: 1.1 usher\r\n", head)
        for hop in ("X-Secret", "Keep-Alive", "TE:", "Connection"):
            self.assertNotIn(hop, head)
        self.assertEqual(response.getheader("Via"), "1.1 usher")

    def test_chunked_response_and_request(self):
        response, body = self.get("/chunked?bytes=3000000")
        self.assertEqual(response.getheader("Transfer-Encoding"), "chunked")
        self.assertEqual(len(body), 3000000)
        payload = os.urandom(1_000_000)
        conn = http_connection(self.port, timeout=10)
        pieces = (payload[i:i + 65536] for i in range(0, len(payload), 65536))
        conn.request("POST", "/upload", body=pieces, encode_chunked=True,
                     headers={"Transfer-Encoding": "chunked"})
        self.assertEqual(conn.getresponse().read().decode(),
                         f"{len(payload)} {hashlib.sha256(payload).hexdigest()}")
        conn.close()

    def test_head_and_bodiless_statuses(self):
        raw = (b"HEAD /big?bytes=5000 HTTP/1.1\r\nHost: t\r\n\r\n"
               b"GET /status?code=204 HTTP/1.1\r\nHost: t\r\n\r\n"
               b"GET /status?code=304 HTTP/1.1\r\nHost: t\r\n\r\n"
               b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        out = exchange(self.port, raw)
        self.assertEqual(out.count(b"HTTP/1.1 "), 4, out)
        self.assertIn(b"Content-Length: 5000\r\n", out.split(b"\r\n\r\n")[0])
        # Only the last response carries a body: a HEAD, 204 or 304 body would shift framing.
        self.assertTrue(out.endswith(b"\r\n\r\na") or out.endswith(b"\r\n\r\nb") or out.endswith(b"\r\n\r\nc"), out)

    def test_pipelined_requests_are_answered_in_order(self):
        raw = b"".join(b"GET /sleep?ms=%d HTTP/1.1\r\nHost: t\r\nX-Order: %d\r\n\r\n" % (ms, i)
                       for i, ms in enumerate((200, 0, 100, 0)))
        raw += b"GET /echo HTTP/1.1\r\nHost: t\r\nX-Last: yes\r\nConnection: close\r\n\r\n"
        out = exchange(self.port, raw)
        self.assertEqual(out.count(b"HTTP/1.1 200"), 5, out)
        last = out[out.rindex(b"GET /echo"):]
        self.assertTrue(last.startswith(b"GET /echo HTTP/1.1\r\nHost: t\r\nX-Last: yes\r\nX-Forwarded-For: 127.0.0.1\r\n"), last)
        self.assertTrue(last.endswith(b"Via: 1.1 usher\r\n\r\n"), last)

    def test_a_client_that_stops_reading_still_gets_every_response_whole(self):
        # A response that came in one piece leaves in one write, which waits for room while the
        # client reads nothing: every byte still arrives, in order. (/echo answers with the
        # request head, padded here.)
        count, pad = 200, b"p" * 12000
        raw = b"".join(b"GET /echo HTTP/1.1\r\nHost: t\r\nX-Order: %d\r\nX-Pad: %s\r\n\r\n" % (i, pad)
                       for i in range(count - 1))
        raw += b"GET /echo HTTP/1.1\r\nHost: t\r\nX-Order: %d\r\nConnection: close\r\n\r\n" % (count - 1)
        with connect(self.port, rcvbuf=4096) as s:
            # The requests outgrow socket buffers too: sent while this side reads, after half a
            # second of reading nothing.
            out = send_while_reading(s, raw, quiet=0.5, timeout=10.5)
        responses = out.split(b"HTTP/1.1 200 X\r\n")
        self.assertEqual(responses[0], b"")
        self.assertEqual(len(responses) - 1, count)
        for i, response in enumerate(responses[1:]):
            head, _, body = response.partition(b"\r\n\r\n")
            length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
            self.assertEqual(len(body), length)
            self.assertIn(b"X-Order: %d\r\n" % i, body)
            if i < count - 1:
                self.assertIn(pad, body)

    def test_http10_client_gets_a_decoded_body_and_close(self):
        out = exchange(self.port, b"GET /chunked?bytes=70000 HTTP/1.0\r\n\r\n")
        head, _, body = out.partition(b"\r\n\r\n")
        self.assertIn(b"Connection: close", head)
        self.assertNotIn(b"Transfer-Encoding", head)
        self.assertEqual(len(body), 70000)
        self.assertEqual(body[:4], bytes([0, 1, 2, 3]))

    def test_http10_keep_alive(self):
        with connect(self.port) as s:
            for _ in range(3):
                s.sendall(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
                head = b""
                while not head.endswith(b"\r\n\r\n"):
                    head += s.recv(1)
                self.assertIn(b"Connection: keep-alive", head)
                self.assertEqual(len(s.recv(1)), 1)

    def test_expect_100_continue(self):
        with connect(self.port) as s:
            s.sendall(b"POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
            interim = s.recv(100)
            self.assertEqual(interim, b"HTTP/1.1 100 Continue\r\n\r\n")
            s.sendall(b"hello")
            shutdown_write(s)
            out = read_until_close(s, 5)
        self.assertEqual(status_of(out), 200)
        self.assertTrue(out.endswith(b"5 " + hashlib.sha256(b"hello").hexdigest().encode()), out)

    def test_websocket_echo(self):
        key = base64.b64encode(os.urandom(16))
        with connect(self.port) as s:
            s.sendall(b"GET /ws HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      b"Sec-WebSocket-Key: " + key + b"\r\nSec-WebSocket-Version: 13\r\n\r\n")
            head = b""
            while not head.endswith(b"\r\n\r\n"):
                head += s.recv(1)
            self.assertTrue(head.startswith(b"HTTP/1.1 101"), head)
            self.assertIn(b"Upgrade: websocket", head)
            for message in (b"hello", b"x" * 1000):
                mask = os.urandom(4)
                masked = bytes(c ^ mask[i % 4] for i, c in enumerate(message))
                length = bytes([0x80 | len(message)]) if len(message) < 126 else bytes([0x80 | 126]) + len(message).to_bytes(2, "big")
                s.sendall(bytes([0x81]) + length + mask + masked)
                frame = b""
                expected = 2 + (2 if len(message) >= 126 else 0) + len(message)
                while len(frame) < expected:
                    frame += s.recv(65536)
                self.assertEqual(frame[-len(message):], message)
            s.sendall(bytes([0x88, 0x80]) + os.urandom(4))
            self.assertEqual(s.recv(2), b"\x88\x00")


class BackendFailures(ProxyTestCase):
    backend_names = ("a",)
    pool_extra = "    timeouts: { connect: 1s, response: 1s }\n"

    def test_ambiguous_framing_from_a_backend_is_502(self):
        out = exchange(self.port, b"GET /ambiguous HTTP/1.1\r\nHost: t\r\n\r\n")
        self.assertEqual(status_of(out), 502)

    def test_hung_backend_is_504(self):
        started = time.monotonic()
        out = exchange(self.port, b"GET /sleep?ms=3000 HTTP/1.1\r\nHost: t\r\n\r\n")
        self.assertEqual(status_of(out), 504)
        self.assertLess(time.monotonic() - started, 2.5)

    def test_backend_dying_mid_response_is_not_a_complete_body(self):
        conn = http_connection(self.port)
        conn.request("GET", "/cut")
        response = conn.getresponse()
        self.assertEqual(response.getheader("Content-Length"), "1000")
        with self.assertRaises((http.client.IncompleteRead, ConnectionResetError, ssl.SSLError)):
            response.read()
        conn.close()

    def test_then_still_serves(self):
        out = exchange(self.port, b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        self.assertEqual(status_of(out), 200)


class StoppedBackend(ProxyTestCase):
    backend_names = ("a",)
    pool_extra = "    timeouts: { connect: 1s }\n"

    def test_stopped_backend_is_502_within_the_connect_timeout(self):
        self.backends[0][1].stop()
        started = time.monotonic()
        out = exchange(self.port, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        self.assertEqual(status_of(out), 502)
        self.assertLess(time.monotonic() - started, 1.0)


if __name__ == "__main__":
    unittest.main()
