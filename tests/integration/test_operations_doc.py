"""docs/operations.md lists every metric usher exports, every field of its JSON access log, and
admin endpoints that answer: checked against a running usher, so a new metric or log field
without its line in the docs fails here."""
import http.client
import json
import os
import re
import tempfile
import time
import unittest

from harness import HERE, free_port, start_backend, start_usher, wait_port

DOC = os.path.join(HERE, "..", "..", "docs", "operations.md")


def get(port, path):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("GET", path)
    response = conn.getresponse()
    body = response.read().decode()
    conn.close()
    return response.status, body


def section(text, title):
    start = text.index(f"## {title}")
    end = text.find("\n## ", start + 1)
    return text[start:] if end < 0 else text[start:end]


def documented_metric(name, metrics_section):
    """True when the docs' metrics table names `name`, in full or as the short alternative in a
    row such as "`usher_x_received_bytes_total` / `_sent_bytes_total`"."""
    for line in metrics_section.splitlines():
        names = re.findall(r"`(usher_\w+|_\w+)`", line.split("|")[1] if line.startswith("|") else "")
        full = [n for n in names if n.startswith("usher_")]
        if name in full:
            return True
        for alt in (n for n in names if n.startswith("_")):
            if name.endswith(alt) and any(f.startswith(name[: -len(alt)]) for f in full):
                return True
    return False


class OperationsDoc(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        with open(DOC) as f:
            cls.doc = f.read()
        cls.backend = start_backend("a")
        cls.admin_port = free_port()
        fd, cls.log_path = tempfile.mkstemp(suffix=".log")
        os.close(fd)
        cls.port, cls.usher = start_usher(
            [cls.backend[0]],
            extra=f"admin: {{ listen: 127.0.0.1:{cls.admin_port} }}\naccess_log: {cls.log_path}\n",
            pool_extra="    health: { interval: 200ms }\n    outlier: { consecutive_failures: 5 }\n")
        wait_port(cls.admin_port)
        for path in ("/", "/status?code=503", "/status?code=404"):  # traffic for every family
            get(cls.port, path)

    @classmethod
    def tearDownClass(cls):
        cls.usher.stop()
        cls.backend[1].stop()
        if os.path.exists(cls.log_path):
            os.unlink(cls.log_path)

    def test_every_exported_metric_is_documented(self):
        status, text = get(self.admin_port, "/metrics")
        self.assertEqual(status, 200)
        families = re.findall(r"^# TYPE (\w+) \w+$", text, re.M)
        self.assertGreater(len(families), 10)
        metrics = section(self.doc, "Metrics")
        missing = [f for f in families if not documented_metric(f, metrics)]
        self.assertEqual(missing, [], "exported but not in docs/operations.md")

    def test_every_access_log_field_is_documented(self):
        deadline = time.monotonic() + 5
        lines = []
        while time.monotonic() < deadline and len(lines) < 3:
            time.sleep(0.1)
            with open(self.log_path) as f:
                lines = [l for l in f.read().splitlines() if l]
        self.assertGreaterEqual(len(lines), 3)
        fields = set()
        for line in lines:
            fields |= set(json.loads(line))
        table = section(self.doc, "Access log")
        documented = set()
        for row in table.splitlines():
            if row.startswith("| `"):
                documented |= set(re.findall(r"`(\w+)`", row.split("|")[1]))
        self.assertEqual(sorted(fields - documented), [], "logged but not in docs/operations.md")

    def test_every_documented_read_endpoint_answers(self):
        api = section(self.doc, "Admin API")
        paths = re.findall(r"^\| `GET (/[\w/]*)[?`]", api, re.M)
        self.assertIn("/readyz", paths)
        for path in paths:
            self.assertEqual(get(self.admin_port, path)[0], 200, path)


if __name__ == "__main__":
    unittest.main()
