"""256 MiB each way, byte-exact, while usher's memory stays bounded."""
import hashlib
import http.client
import os
import threading
import unittest

from harness import ProxyTestCase, rss_kib

SIZE = 256 * 1024 * 1024
PATTERN = bytes(range(256)) * 4096  # what backend.py streams


class RssSampler:
    def __init__(self, pid):
        self.pid, self.peak, self.peak_anon, self.running = pid, 0, 0, True
        self.thread = threading.Thread(target=self.run)
        self.thread.start()

    def run(self):
        import time
        while self.running:
            self.peak = max(self.peak, rss_kib(self.pid))
            self.peak_anon = max(self.peak_anon, rss_kib(self.pid, "RssAnon:"))
            time.sleep(0.01)

    def stop(self):
        self.running = False
        self.thread.join()
        return self.peak


class Transfers(ProxyTestCase):
    backend_names = ("a",)

    def test_256_mib_download_and_upload_with_bounded_memory(self):
        warm = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        warm.request("GET", "/")
        warm.getresponse().read()
        warm.close()
        idle = rss_kib(self.usher.pid)  # after one request: buffers and pools in place
        sampler = RssSampler(self.usher.pid)
        try:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
            conn.request("GET", f"/big?bytes={SIZE}")
            response = conn.getresponse()
            digest, total = hashlib.sha256(), 0
            while True:
                piece = response.read(1 << 20)
                if not piece:
                    break
                digest.update(piece)
                total += len(piece)
            self.assertEqual(total, SIZE)
            expected = hashlib.sha256()
            for _ in range(SIZE // len(PATTERN)):
                expected.update(PATTERN)
            self.assertEqual(digest.hexdigest(), expected.hexdigest())

            upload = (PATTERN[i % 256:] + PATTERN[:i % 256] for i in range(SIZE // len(PATTERN)))
            sent = hashlib.sha256()
            for i in range(SIZE // len(PATTERN)):
                sent.update(PATTERN[i % 256:] + PATTERN[:i % 256])
            conn.request("POST", "/upload", body=upload, headers={"Content-Length": str(SIZE)})
            self.assertEqual(conn.getresponse().read().decode(), f"{SIZE} {sent.hexdigest()}")
            conn.close()
        finally:
            peak = sampler.stop()
        anon = sampler.peak_anon
        print(f"\nRSS idle {idle} KiB, peak during 2 x 256 MiB {peak} KiB (+{peak - idle} KiB), "
              f"of it anonymous {anon} KiB")
        if os.environ.get("USHER_SANITIZED"):
            self.skipTest("memory bound not asserted under AddressSanitizer (shadow memory)")
        # README.md: "RSS grows by less than 5 MiB ... anonymous memory under 8 MiB". Measured:
        # epoll +0.1 MiB, io_uring +4.3 MiB (its receive buffer ring fills), 6 MiB anonymous at
        # the peak. The rest of RSS (about 10 MiB) is the binary's and the libraries' pages,
        # which the page cache decides more than usher: not bounded here.
        self.assertLess(peak - idle, 5 * 1024, f"RSS grew from {idle} to {peak} KiB")
        self.assertLess(anon, 8 * 1024, f"peak anonymous RSS {anon} KiB")


if __name__ == "__main__":
    unittest.main()
