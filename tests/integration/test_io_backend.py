"""Choosing the event-loop backend: io_uring where the kernel allows it, epoll where a seccomp
profile refuses io_uring (as Docker's default one does) with its writes batched through Linux AIO,
one syscall each where AIO is refused too, a clear start-up error when io_uring is demanded and
refused."""
import os
import subprocess
import time
import unittest

from harness import USHER, Process, exchange, free_port, start_backend, status_of, write_config

WITHOUT_IO_URING = os.environ.get("USHER_WITHOUT_IO_URING", "")


def config_for(port, backend_port, io_backend):
    return write_config(
        f"io_backend: {io_backend}\n"
        f"listeners:\n  - name: web\n    listen: 127.0.0.1:{port}\n    pool: web\n"
        f"pools:\n  - name: web\n    backends:\n      - 127.0.0.1:{backend_port}\n")


def environment():
    env = dict(os.environ)
    env.pop("USHER_IO_BACKEND", None)  # the config decides here
    return env


@unittest.skipUnless(WITHOUT_IO_URING, "USHER_WITHOUT_IO_URING (the seccomp launcher) is not set")
class IoBackend(unittest.TestCase):
    def setUp(self):
        self.backend_port, self.backend = start_backend("a")

    def tearDown(self):
        self.backend.stop()

    def serve(self, io_backend, launcher=()):
        port = free_port()
        usher = Process([*launcher, USHER, "run", "-c", config_for(port, self.backend_port, io_backend)],
                        port=port, env=environment())
        try:
            answer = exchange(port, b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            time.sleep(0.1)
            return status_of(answer), usher.output()
        finally:
            usher.stop()

    def test_auto_takes_io_uring_where_the_kernel_allows_it(self):
        status, log = self.serve("auto")
        self.assertEqual(status, 200)
        self.assertIn("io backend: io_uring", log)

    def test_auto_falls_back_to_epoll_under_a_profile_that_refuses_io_uring(self):
        status, log = self.serve("auto", launcher=(WITHOUT_IO_URING,))
        self.assertEqual(status, 200)
        self.assertIn("io backend: epoll+aio (io_uring unavailable: io_uring_setup: Operation not permitted)",
                      log)

    def test_epoll_writes_one_syscall_each_under_a_profile_that_refuses_aio_too(self):
        status, log = self.serve("auto", launcher=(WITHOUT_IO_URING, "--and-aio"))
        self.assertEqual(status, 200)
        self.assertIn("io backend: epoll (io_uring unavailable: io_uring_setup: Operation not permitted)",
                      log)

    def test_demanding_io_uring_where_it_is_refused_is_a_start_up_error(self):
        port = free_port()
        done = subprocess.run([WITHOUT_IO_URING, USHER, "run", "-c", config_for(port, self.backend_port, "io_uring")],
                              env=environment(), capture_output=True, text=True, timeout=10)
        self.assertEqual(done.returncode, 1)
        self.assertIn("io_backend io_uring is not available here: io_uring_setup: Operation not permitted",
                      done.stdout + done.stderr)


if __name__ == "__main__":
    unittest.main()
