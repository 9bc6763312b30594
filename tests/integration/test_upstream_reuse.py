"""Upstream keep-alive as the backend sees it: one upstream connection serves many sequential
client connections, and a connection whose response had ambiguous framing is never reused."""
import unittest

from harness import ProxyTestCase, backend_stats, exchange, status_of


class UpstreamReuse(ProxyTestCase):
    backend_names = ("a",)

    def connections(self):
        return backend_stats(self.backend_ports[0])["connections"] - 1  # this /stats connection

    def request(self, path="/"):
        return exchange(self.port, b"GET " + path.encode() + b" HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")

    def test_sequential_client_connections_share_one_upstream_connection(self):
        self.assertEqual(status_of(self.request()), 200)
        before = self.connections()
        for _ in range(20):  # twenty client connections, one after another
            self.assertEqual(status_of(self.request()), 200)
        self.assertEqual(self.connections() - before, 1)  # only the /stats request's own

    def test_a_connection_that_sent_ambiguous_framing_is_not_reused(self):
        self.assertEqual(status_of(self.request()), 200)
        before = self.connections()
        self.assertEqual(status_of(self.request("/ambiguous")), 502)
        self.assertEqual(status_of(self.request()), 200)
        # The stats request's own connection, and a new one for the request after the 502.
        self.assertEqual(self.connections() - before, 2)


if __name__ == "__main__":
    unittest.main()
