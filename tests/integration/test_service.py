"""usher under systemd: the unit in dist/usher.service passes `systemd-analyze verify`, and usher
started the way the unit starts it tells the service manager READY=1 once it serves, RELOADING=1
then READY=1 around a reload (refused or not), and STOPPING=1 when a stop begins. The test plays
the service manager: NOTIFY_SOCKET names a datagram socket it reads."""
import os
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import unittest

from harness import USHER, exchange, free_port, start_backend, status_of

UNIT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "dist", "usher.service")
INSTALLED_BINARY, INSTALLED_CONFIG = "/usr/bin/usher", "/etc/usher/usher.yaml"


def unit_lines(key):
    with open(UNIT) as f:
        return [line.split("=", 1)[1].strip() for line in f if line.startswith(key + "=")]


class Unit(unittest.TestCase):
    def test_systemd_analyze_verify_accepts_it_without_a_warning(self):
        folder = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, folder, True)
        with open(UNIT) as f:
            text = f.read().replace(INSTALLED_BINARY, os.path.abspath(USHER))
        path = os.path.join(folder, "usher.service")
        with open(path, "w") as f:
            f.write(text)
        run = subprocess.run(["systemd-analyze", "verify", path], capture_output=True, text=True, timeout=60)
        # verify warns about an unknown key or value and still exits 0: any output is a failure
        self.assertEqual((run.returncode, run.stdout + run.stderr), (0, ""))

    def test_it_is_a_notify_service_reloaded_by_sighup(self):
        self.assertEqual(unit_lines("Type"), ["notify"])
        self.assertEqual(unit_lines("ExecReload")[-1], "/bin/kill -HUP $MAINPID")


class Notifications(unittest.TestCase):
    def setUp(self):
        folder = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, folder, True)
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.addCleanup(self.notify.close)
        self.notify_path = os.path.join(folder, "notify")
        self.notify.bind(self.notify_path)
        self.backend, backend = start_backend("b")
        self.addCleanup(backend.stop)
        self.port = free_port()
        self.config = os.path.join(folder, "usher.yaml")
        self.write_config(f"pools:\n  - name: web\n    backends: [127.0.0.1:{self.backend}]\n")
        self.log = open(os.path.join(folder, "usher.log"), "w+")
        self.addCleanup(self.log.close)

    def write_config(self, pools):
        with open(self.config, "w") as f:
            f.write(f"workers: 1\ntimeouts: {{ drain: 1s }}\nlisteners:\n"
                    f"  - name: web\n    listen: 127.0.0.1:{self.port}\n    pool: web\n{pools}")

    def start_as_the_unit_does(self):
        command = shlex.split(unit_lines("ExecStart")[0])
        self.assertEqual(command[0], INSTALLED_BINARY)
        command = [USHER] + [self.config if a == INSTALLED_CONFIG else a for a in command[1:]]
        env = dict(os.environ, NOTIFY_SOCKET=self.notify_path)
        process = subprocess.Popen(command, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        self.addCleanup(lambda: process.poll() is None and (process.kill(), process.wait()))
        return process

    def next_state(self, timeout=10.0):
        self.notify.settimeout(timeout)
        message = self.notify.recv(4096).decode()
        return dict(line.split("=", 1) for line in message.split("\n") if line)

    def assert_serving(self):
        self.assertEqual(status_of(exchange(self.port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")), 200)

    def test_ready_reloading_ready_stopping(self):
        process = self.start_as_the_unit_does()
        ready = self.next_state()
        self.assertEqual(ready["READY"], "1")
        self.assertRegex(ready["STATUS"], r"^serving generation 1 \(1 listeners, 1 workers\)$")
        self.assert_serving()  # READY=1 comes after the listeners accept, not before

        process.send_signal(signal.SIGHUP)
        reloading = self.next_state()
        self.assertEqual(reloading["RELOADING"], "1")
        self.assertGreater(int(reloading["MONOTONIC_USEC"]), 0)
        self.assertRegex(self.next_state()["STATUS"], r"^serving generation 2 ")
        self.assert_serving()

        process.send_signal(signal.SIGTERM)
        self.assertEqual(self.next_state(), {"STOPPING": "1"})
        self.assertEqual(process.wait(timeout=15), 0)

    def test_a_refused_reload_is_ready_again_on_the_old_configuration(self):
        process = self.start_as_the_unit_does()
        self.assertEqual(self.next_state()["READY"], "1")
        self.write_config("pools: [\n")  # broken: the reload is refused
        process.send_signal(signal.SIGHUP)
        self.assertEqual(self.next_state()["RELOADING"], "1")
        ready = self.next_state()
        self.assertEqual((ready["READY"], ready["STATUS"]), ("1", "serving generation 1 (1 listeners, 1 workers)"))
        self.assert_serving()


if __name__ == "__main__":
    unittest.main()
