"""Replays the public http-desync-guardian corpus (classified ambiguous requests) through usher.

The corpus lives beside the repository in ../shared/data/http-desync-guardian and is not part of
usher; where it is absent this test skips and says so. Every case must either be rejected with a
4xx/5xx status or reach the backend in a form that only one reading allows."""
import glob
import os
import re
import socket
import threading
import time
import unittest

from harness import free_port, read_until_close, start_usher, status_of

SHARED = os.environ.get("USHER_SHARED", os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared"))
CORPUS = os.path.join(SHARED, "data", "http-desync-guardian")
TOKEN = re.compile(rb"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")


def raw_bytes(value):
    text = "" if value is None else str(value)
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        return text.encode("utf-8")


def build_request(case):
    version = raw_bytes(case.get("version"))
    line = raw_bytes(case.get("method")) + b" " + raw_bytes(case.get("uri"))
    if version:
        line += b" " + version
    headers = case.get("headers") or []
    names = [raw_bytes(h.get("name")).lower() for h in headers]
    out = line + b"\r\n"
    if b"host" not in names:
        out += b"Host: guardian.test\r\n"  # so each case is judged on its own ambiguity
    for h in headers:
        out += raw_bytes(h.get("name")) + b": " + raw_bytes(h.get("value")) + b"\r\n"
    return out + b"\r\n"


def unambiguous_problems(head):
    """Independent strict reading of a forwarded head: what would let two parsers disagree."""
    problems = []
    if b"\n" in head.replace(b"\r\n", b"") or b"\r" in head.replace(b"\r\n", b""):
        problems.append("bare CR or LF")
    lines = head.split(b"\r\n")
    request_line = lines[0].split(b" ")
    if len(request_line) != 3 or request_line[2] != b"HTTP/1.1":
        problems.append(f"request line {lines[0]!r}")
    counts = {}
    for line in lines[1:]:
        if not line:
            continue
        if line[:1] in (b" ", b"\t"):
            problems.append("folded line")
            continue
        name, sep, value = line.partition(b":")
        if not sep or not TOKEN.match(name):
            problems.append(f"field name {name!r}")
            continue
        if any(c < 0x20 and c != 0x09 or c == 0x7F for c in value):
            problems.append(f"control character in {name!r}")
        key = name.lower()
        counts[key] = counts.get(key, 0) + 1
        if key == b"content-length" and not value.strip().isdigit():
            problems.append(f"content-length {value!r}")
        if key == b"transfer-encoding" and not value.strip().lower().endswith(b"chunked"):
            problems.append(f"transfer-encoding {value!r}")
    if counts.get(b"content-length", 0) > 1:
        problems.append("several content-length fields")
    if counts.get(b"transfer-encoding", 0) > 1:
        problems.append("several transfer-encoding fields")
    if counts.get(b"content-length") and counts.get(b"transfer-encoding"):
        problems.append("content-length with transfer-encoding")
    if counts.get(b"host", 0) != 1:
        problems.append("host count")
    return problems


class RecordingBackend:
    """Records each connection's head and answers at once, closing afterwards."""

    def __init__(self):
        self.port = free_port()
        self.sock = socket.create_server(("127.0.0.1", self.port))
        self.heads, self.accepted, self.finished = [], 0, 0
        self.lock = threading.Lock()
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.accepted += 1
            threading.Thread(target=self.handle, args=(conn,), daemon=True).start()

    def handle(self, conn):
        data = b""
        conn.settimeout(5)
        try:
            while b"\r\n\r\n" not in data:
                piece = conn.recv(65536)
                if not piece:
                    break
                data += piece
            if b"\r\n\r\n" in data:
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        except OSError:
            pass
        finally:
            conn.close()
            with self.lock:
                if b"\r\n\r\n" in data:
                    self.heads.append(data.split(b"\r\n\r\n")[0])
                self.finished += 1

    def settle(self):
        # usher has closed its side by now, but this thread may not have accepted yet.
        time.sleep(0.02)
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            with self.lock:
                if self.accepted == self.finished:
                    return
            time.sleep(0.005)


def load_cases():
    import yaml  # python3-yaml: installed by scripts/setup.sh
    cases = []
    for path in sorted(glob.glob(os.path.join(CORPUS, "*.yaml"))):
        with open(path, "rb") as f:
            for case in yaml.safe_load(f) or []:
                cases.append((os.path.basename(path), case))
    return cases


@unittest.skipUnless(os.path.isdir(CORPUS), f"corpus not found at {CORPUS}: guardian replay skipped")
class Guardian(unittest.TestCase):
    def test_no_case_reaches_a_backend_in_an_ambiguous_form(self):
        backend = RecordingBackend()
        port, usher = start_usher([backend.port])
        rejected = forwarded = 0
        try:
            cases = load_cases()
            self.assertGreater(len(cases), 100)
            for source, case in cases:
                with self.subTest(f"{source}: {case.get('name')}"):
                    with backend.lock:
                        seen = len(backend.heads)
                    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                        s.sendall(build_request(case))
                        s.shutdown(socket.SHUT_WR)  # no body follows: ends any body usher waits for
                        out = read_until_close(s, 5)
                    backend.settle()
                    with backend.lock:
                        new_heads = backend.heads[seen:]
                    status = status_of(out)
                    if new_heads:
                        forwarded += 1
                        self.assertEqual(len(new_heads), 1)
                        self.assertEqual(unambiguous_problems(new_heads[0]), [], new_heads[0])
                        if case["expected"]["tier"] == "Severe":
                            self.fail(f"severe case forwarded: {new_heads[0]!r}")
                    else:
                        rejected += 1
                        self.assertIsNotNone(status, out)
                        self.assertGreaterEqual(status, 400, out)
            print(f"\nguardian: {len(cases)} cases, {forwarded} forwarded unambiguously, {rejected} rejected")
        finally:
            usher.stop()


if __name__ == "__main__":
    unittest.main()
