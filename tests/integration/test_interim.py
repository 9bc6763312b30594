"""Interim 1xx responses from a backend reach HTTP/1.1 clients ahead of the final response (and
HTTP/1.0 clients, who know none, only get the final one)."""
import unittest

from harness import exchange, start_usher
from recorder import Recorder


class EarlyHints(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.backend = Recorder("a", "hints")
        cls.port, cls.usher = start_usher([cls.backend.port])

    @classmethod
    def tearDownClass(cls):
        cls.usher.stop()
        cls.backend.stop()

    def test_a_103_is_forwarded_before_the_final_response(self):
        out = exchange(self.port, b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        self.assertTrue(out.startswith(b"HTTP/1.1 103 "), out)
        hints, final = out.split(b"\r\n\r\n", 1)
        self.assertIn(b"Link: </style.css>; rel=preload", hints)
        self.assertTrue(final.startswith(b"HTTP/1.1 200 "), final)
        self.assertTrue(final.endswith(b"\r\n\r\na"))

    def test_an_http10_client_gets_only_the_final_response(self):
        out = exchange(self.port, b"GET / HTTP/1.0\r\nHost: t\r\n\r\n")
        self.assertTrue(out.startswith(b"HTTP/1.1 200 ") or out.startswith(b"HTTP/1.0 200 "), out)
        self.assertNotIn(b"103", out.split(b"\r\n")[0])
        self.assertNotIn(b"Link:", out)


if __name__ == "__main__":
    unittest.main()
