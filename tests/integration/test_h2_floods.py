"""HTTP/2 floods against usher's h2c listener, sent as raw frames (flood_peers.py), with h2load
as the well-behaved load and a backend that counts what reaches it by path.

What is proven, each by an assertion that fails if the defence is gone:
- Rapid reset (CVE-2023-44487): a client opening and cancelling 10 000 streams in batched writes
  gets GOAWAY within a second, each time it comes back; almost none of its streams reach the
  backend; 50 well-behaved h2load connections keep their p99 within 1.2x of the same load's
  without it (half-second windows with and without, in turns); each attack connection counts as
  rapid_reset, also when nghttp2's reset_limit rather than the glitch score ends it. A stream
  reset while its request is at the backend cancels that request at once.
- CONTINUATION flood (CVE-2024-27316): 10 MB of header data in CONTINUATION frames is cut off
  after max_continuations, and usher's resident and peak memory grow far less than 10 MB; a
  header list just over max_header_list is answered 431 and the connection goes on.
- SETTINGS, PING, PRIORITY and empty-DATA floods end with GOAWAY ENHANCE_YOUR_CALM, counted by
  reason, whether the client reads its acknowledgements or not; a PING every 100 ms is no flood
  (the glitch score drains).
- max_concurrent_streams: the 101st concurrent stream is reset (PROTOCOL_ERROR or
  REFUSED_STREAM), the connection and its 100 other streams go on."""
import collections
import os
import shutil
import subprocess
import tempfile
import time
import unittest

from hyperframe.frame import (ContinuationFrame, DataFrame, Frame, HeadersFrame, PingFrame, PriorityFrame,
                              RstStreamFrame, SettingsFrame)

from flood_peers import (CANCEL, ENHANCE_YOUR_CALM, NO_ERROR, PROTOCOL_ERROR, REFUSED_STREAM,
                         REQUEST_LIST_BYTES, Conn, Usher, backend_counts, headers, literal, ping,
                         request_block, start_backend)
from harness import rss_kib

SANITIZED = bool(os.environ.get("USHER_SANITIZED"))

# ---------------------------------------------------------------------------------------------
# Rapid reset

ATTACK_STREAMS = 10_000
ATTACK_EVERY = 0.25  # seconds from one attack connection's end to the next one's start
# Closed-loop load (each connection asks again once answered) for LOAD_SECONDS, in windows of
# WINDOW seconds, attacked and not in turns: what else the machine runs weighs on both alike.
LOAD = ["-c", "50", "-m", "1"]
LOAD_SECONDS = 40
WINDOW = 0.5


def attack_bytes(path="/attack"):
    """HEADERS (END_STREAM) and RST_STREAM CANCEL for streams 1, 3, ... as one batch."""
    block = request_block(path)
    return b"".join(headers(2 * i + 1, block) + RstStreamFrame(2 * i + 1, error_code=CANCEL).serialize()
                    for i in range(ATTACK_STREAMS))


class Attack:
    """One rapid-reset connection: the whole batch is written as fast as usher reads it, while
    what usher sends is read, until usher closes the connection or 3 s pass."""

    def __init__(self, port, batch):
        conn = Conn(port)
        preface = len(conn.out)
        conn.pump(batch, until=lambda c: False, timeout=3.0)
        conn.close()
        self.code, self.after, self.closed = conn.goaway_code(), conn.goaway_after, conn.closed
        self.streams_sent = max(0, conn.sent - preface) * ATTACK_STREAMS // len(batch)

    def __repr__(self):
        after = "never" if self.after is None else f"{self.after * 1000:.0f} ms"
        return f"Attack(GOAWAY {self.code} after {after}, {self.streams_sent} streams sent, closed {self.closed})"


def p99(times):
    ordered = sorted(times)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def attacked_windows(port, batch, start, end):
    """The attacking client, from `start` to `end` (time.time()): in every other WINDOW it comes
    back with a new attack connection ATTACK_EVERY after the last was cut off, ending 100 ms
    before the window does. Not back to back: then the attack's own work (the client, the
    kernel, the connections) takes most of two cores whatever usher does, and the well-behaved
    p99 suffers as much when it goes to a second usher process instead."""
    attacks = []
    while (now := time.time()) < end:
        window = int((now - start) // WINDOW) if now >= start else -1
        closing = start + (window + 1) * WINDOW - 0.1
        if window % 2 == 1 and now < closing:
            attacks.append(Attack(port, batch))
            time.sleep(max(0.0, min(ATTACK_EVERY, closing - time.time())))
        else:
            time.sleep(0.005)
    return attacks


def load_while_attacked(port, batch, workdir):
    """h2load's load for LOAD_SECONDS with attacked_windows from its second second on: the times
    in ms of the requests started in windows without and with the attack, the failed requests,
    and the attacks."""
    log = os.path.join(workdir, "load.log")
    h2load = subprocess.Popen(["h2load", *LOAD, "-D", str(LOAD_SECONDS), "--log-file", log,
                               f"http://127.0.0.1:{port}/"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    start = time.time() + 1.0  # once its connections are up
    end = start + LOAD_SECONDS - 2.0
    try:
        attacks = attacked_windows(port, batch, start, end)
    finally:
        output = h2load.communicate(timeout=LOAD_SECONDS + 60)[0]
    times, failed = ([], []), 0
    with open(log) as f:
        for started, status, took in (line.split("\t")[:3] for line in f.read().splitlines() if line):
            failed += status != "200"
            at = int(started) / 1e6
            if start <= at < end:
                times[int((at - start) // WINDOW) % 2].append(int(took) / 1000)
    if not times[0] or not times[1]:
        raise AssertionError(f"h2load logged no requests: {output[-800:]}")
    return times[0], times[1], failed, attacks


class RapidReset(unittest.TestCase):
    """The load and the attack run once for the class; the tests read what they left."""

    @classmethod
    def setUpClass(cls):
        cls.backend_port, cls.backend = start_backend()
        try:
            cls.usher = Usher(cls.backend_port, {"web": None, "resets": "{ glitch_limit: 0 }"}, workers=2)
        except BaseException:
            cls.backend.stop()
            raise
        cls.workdir = tempfile.mkdtemp(prefix="usher-h2-floods-")
        cls.port = cls.usher.ports["web"]
        cls.batch = attack_bytes()
        try:
            cls.measure()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def measure(cls):
        cls.errors_before = cls.usher.errors("web")
        cls.backend_before = backend_counts(cls.backend_port)
        subprocess.run(["h2load", *LOAD, "-D", "2", f"http://127.0.0.1:{cls.port}/"],  # warm-up
                       capture_output=True, timeout=60)
        cls.baseline, cls.attacked, cls.failed, cls.attacks = load_while_attacked(cls.port, cls.batch,
                                                                                  cls.workdir)
        cls.errors_added = cls.usher.errors_after("web", cls.errors_before, {"rapid_reset": len(cls.attacks)})
        cls.backend_added = backend_counts(cls.backend_port) - cls.backend_before
        cls.ratio = p99(cls.attacked) / p99(cls.baseline)
        after = [round(a.after * 1000, 1) for a in cls.attacks if a.after is not None]
        print(f"\nh2load {' '.join(LOAD)} for {LOAD_SECONDS} s, p99 {p99(cls.baseline):.2f} ms "
              f"({len(cls.baseline)} requests) without the attack, {p99(cls.attacked):.2f} ms "
              f"({len(cls.attacked)} requests) with it: ratio {cls.ratio:.2f}\n"
              f"{len(cls.attacks)} attack connections of {ATTACK_STREAMS} streams: GOAWAY after "
              f"{min(after, default=None)} to {max(after, default=None)} ms, codes "
              f"{dict(collections.Counter(a.code for a in cls.attacks))}; the backend saw "
              f"{cls.backend_added['/attack']} of their streams; errors counted {dict(+cls.errors_added)}")

    @classmethod
    def tearDownClass(cls):
        cls.usher.stop()
        cls.backend.stop()
        shutil.rmtree(cls.workdir, ignore_errors=True)

    def test_every_attack_connection_gets_goaway_within_a_second(self):
        self.assertGreaterEqual(len(self.attacks), LOAD_SECONDS)
        for attack in self.attacks:
            self.assertIsNotNone(attack.code, attack)
            self.assertNotEqual(attack.code, NO_ERROR, attack)
            self.assertLess(attack.after, 1.0, attack)
            self.assertTrue(attack.closed, attack)

    def test_the_backend_sees_almost_none_of_the_cancelled_streams(self):
        sent = sum(a.streams_sent for a in self.attacks)
        self.assertGreater(sent, 1000 * len(self.attacks))
        self.assertLessEqual(self.backend_added["/attack"], 100 * len(self.attacks), self.attacks)
        self.assertLessEqual(self.backend_added["/attack"], sent // 100)

    def test_well_behaved_connections_keep_their_p99(self):
        self.assertEqual(self.failed, 0)
        for times in (self.baseline, self.attacked):
            self.assertGreater(len(times), LOAD_SECONDS * 100)
        if SANITIZED:
            self.skipTest("latency not compared under the sanitizers")
        self.assertLessEqual(self.ratio, 1.2)

    def test_each_attack_connection_counts_as_rapid_reset(self):
        self.assertEqual(self.errors_added["rapid_reset"], len(self.attacks), self.errors_added)
        self.assertEqual(self.errors_added["protocol"], 0, self.errors_added)

    def test_reset_limit_alone_ends_a_rapid_reset_and_counts_it(self):
        # glitch_limit 0 leaves nghttp2's token bucket (reset_limit: burst 1000) as the only defence.
        before = self.usher.errors("resets")
        attack = Attack(self.usher.ports["resets"], self.batch)
        self.assertIsNotNone(attack.code, attack)
        self.assertNotEqual(attack.code, NO_ERROR, attack)
        self.assertLess(attack.after, 1.0, attack)
        added = self.usher.errors_after("resets", before, {"rapid_reset": 1})
        self.assertEqual(+added, {"rapid_reset": 1}, f"{attack}: GOAWAY code {attack.code}")

    def test_a_reset_stream_cancels_its_backend_request_at_once(self):
        before = backend_counts(self.backend_port)
        conn = Conn(self.port).settled()
        conn.pump(headers(1, request_block("/slow?ms=20000")))
        deadline = time.monotonic() + 5
        while backend_counts(self.backend_port)["/slow in flight"] == before["/slow in flight"]:
            self.assertLess(time.monotonic(), deadline, "the request never reached the backend")
            time.sleep(0.02)
        reset_at = time.monotonic()
        conn.pump(RstStreamFrame(1, error_code=CANCEL).serialize())
        while backend_counts(self.backend_port)["/slow cancelled"] == before["/slow cancelled"]:
            self.assertLess(time.monotonic() - reset_at, 1.0, "the backend request went on after the reset")
            time.sleep(0.02)
        conn.pump(headers(3, request_block("/")), until=lambda c: 3 in c.status)
        self.assertEqual(conn.status.get(3), "200")  # the connection itself goes on
        conn.close()


# ---------------------------------------------------------------------------------------------
# Header-list, control-frame and stream floods


def padded_block(list_bytes, path="/"):
    """A request block whose fields count exactly `list_bytes` (RFC 9113 section 6.5.2)."""
    return request_block(path, extra=literal(b"x-pad", b"a" * (list_bytes - REQUEST_LIST_BYTES - 5 - 32)))


def described(conn):
    kinds = collections.Counter(type(f).__name__ for f in conn.frames)
    return (f"received {dict(kinds)}, GOAWAY {conn.goaway_code()} after {conn.goaway_after}, "
            f"closed {conn.closed}, {conn.sent} bytes sent")


class UsherCase(unittest.TestCase):
    listeners = {"web": None}

    @classmethod
    def setUpClass(cls):
        cls.backend_port, cls.backend = start_backend()
        try:
            cls.usher = Usher(cls.backend_port, cls.listeners)
        except BaseException:
            cls.backend.stop()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.usher.stop()
        cls.backend.stop()

    def port(self, listener="web"):
        return self.usher.ports[listener]

    def assert_calmed(self, conn, reason, listener="web", before=None):
        """usher ended the connection with GOAWAY ENHANCE_YOUR_CALM, counted once as `reason`."""
        conn.ended()
        conn.close()
        self.assertEqual(conn.goaway_code(), ENHANCE_YOUR_CALM, described(conn))
        self.assertTrue(conn.closed, described(conn))
        if before is not None:
            added = self.usher.errors_after(listener, before, {reason: 1})
            self.assertEqual(+added, {reason: 1}, described(conn))


class Floods(UsherCase):
    listeners = {"web": None, "tight": "{ glitch_limit: 20 }"}

    def burst(self, payload, reason, prelude=b""):
        """`payload` in batched writes, reading only what usher sends."""
        before = self.usher.errors("web")
        conn = Conn(self.port())
        conn.pump(prelude + payload, until=lambda c: False, timeout=3.0)
        self.assert_calmed(conn, reason, before=before)

    def lockstep(self, frame, reason, batch=100, total=5000):
        """`frame` in batches, each sent once usher acknowledged the last: a client that reads
        its ACKs, which nghttp2's own flood check (unanswered ACKs) cannot see."""
        before = self.usher.errors("web")
        conn = Conn(self.port()).settled()
        kind, sent = type(Frame.parse_frame_header(memoryview(frame[:9]))[0]), 0
        started = time.monotonic()
        while sent < total and conn.goaway is None and not conn.closed:
            acks = conn.count(kind, "ACK") + batch
            conn.pump(frame * batch, until=lambda c: c.count(kind, "ACK") >= acks or c.goaway, timeout=3.0)
            sent += batch
        self.assert_calmed(conn, reason, before=before)
        # Cut off near the limit: 1000 points plus what drained (100 a second) meanwhile.
        self.assertLessEqual(sent, 1000 + 100 * (time.monotonic() - started) + 2 * batch, described(conn))

    def test_settings_flood_burst(self):
        self.burst(SettingsFrame(0).serialize() * 5000, "settings_flood")

    def test_settings_flood_from_a_client_that_reads_its_acks(self):
        self.lockstep(SettingsFrame(0).serialize(), "settings_flood")

    def test_ping_flood_burst(self):
        self.burst(b"".join(ping(n) for n in range(5000)), "ping_flood")

    def test_ping_flood_from_a_client_that_reads_its_acks(self):
        self.lockstep(ping(7), "ping_flood")

    def test_priority_flood(self):
        self.burst(b"".join(PriorityFrame(2 * n + 1, depends_on=0, stream_weight=16).serialize()
                            for n in range(5000)), "priority_flood")

    def test_empty_data_flood(self):
        self.burst(DataFrame(1, data=b"").serialize() * 5000, "empty_data_flood",
                   prelude=headers(1, request_block("/upload", "POST"), end_stream=False))

    def test_a_ping_every_100_ms_is_not_a_flood(self):
        # On a listener allowing 20 points, 40 PINGs over 4 s: the score drains 10 between two.
        before = self.usher.errors("tight")
        conn = Conn(self.port("tight")).settled()
        start = time.monotonic()
        for n in range(1, 41):
            time.sleep(max(0.0, start + n * 0.1 - time.monotonic()))
            conn.pump(ping(n), until=lambda c: c.count(PingFrame, "ACK") > n, timeout=2.0)
        conn.pump(headers(1, request_block("/")), until=lambda c: 1 in c.status)
        self.assertEqual(conn.count(PingFrame, "ACK"), 41, described(conn))
        self.assertEqual(conn.status.get(1), "200", described(conn))
        self.assertIsNone(conn.goaway, described(conn))
        self.assertEqual(+(self.usher.errors("tight") - before), {})
        # The same 40 PINGs at once pass the listener's limit: it was in force.
        conn.pump(b"".join(ping(n) for n in range(40)), until=lambda c: False, timeout=3.0)
        self.assert_calmed(conn, "ping_flood", "tight", before)

    def test_a_header_list_just_over_max_header_list_is_answered_431(self):
        # max_header_list defaults to limits.max_header_bytes (16 KiB); each block fits one frame.
        before = self.usher.errors("web")
        at, over = padded_block(16384), padded_block(16385)
        self.assertLess(len(over), 16384)
        conn = Conn(self.port()).settled()
        conn.pump(headers(1, at) + headers(3, over) + headers(5, request_block("/")),
                  until=lambda c: len(c.status) == 3)
        self.assertEqual(conn.status, {1: "200", 3: "431", 5: "200"}, described(conn))
        conn.pump(headers(7, request_block("/")), until=lambda c: 7 in c.status)
        self.assertEqual(conn.status.get(7), "200", described(conn))
        self.assertIsNone(conn.goaway, described(conn))
        conn.close()
        self.assertEqual(+(self.usher.errors("web") - before), {"header_list_too_large": 1})

    def concurrent_streams(self, conn):
        """101 requests for /slow in one write: (the resets, the statuses, backend requests)."""
        before = backend_counts(self.backend_port)
        block = request_block("/slow?ms=1500")
        conn.pump(b"".join(headers(2 * n + 1, block) for n in range(101)),
                  until=lambda c: len(c.status) >= 100 and c.resets(), timeout=10.0)
        conn.close()
        return conn.resets(), conn.status, (backend_counts(self.backend_port) - before)["/slow"]

    def test_the_101st_concurrent_stream_ends_the_connection(self):
        # Once the client acknowledged the SETTINGS announcing 100, the 101st stream breaks the
        # limit. RFC 9113 section 5.1.2 makes that a stream error, and section 5.4.1 lets an
        # endpoint treat any stream error as a connection error: nghttp2 does (docs/http2.md
        # says so), with GOAWAY PROTOCOL_ERROR, counted as too_many_streams.
        before = self.usher.errors("web")
        conn = Conn(self.port()).settled()
        self.concurrent_streams(conn)
        self.assertIsNotNone(conn.goaway, described(conn))
        self.assertEqual(conn.goaway.error_code, PROTOCOL_ERROR, described(conn))
        self.assertEqual(+(self.usher.errors("web") - before), {"too_many_streams": 1})

    def test_the_101st_concurrent_stream_before_the_settings_ack_is_refused(self):
        before = self.usher.errors("web")
        resets, status, reached = self.concurrent_streams(Conn(self.port(), acknowledge=False))
        self.assertEqual(resets, {201: REFUSED_STREAM})
        self.assertEqual(status, {2 * n + 1: "200" for n in range(100)})
        self.assertEqual(reached, 100)
        self.assertEqual(+(self.usher.errors("web") - before), {"refused_stream": 1})


class ContinuationFlood(UsherCase):
    """An usher of its own, so that its peak memory (VmHWM) is this flood's."""

    def test_10_mb_of_continuation_frames_are_cut_off_and_memory_stays_bounded(self):
        pid = self.usher.process.pid
        # Legitimate traffic first: 4000 requests one after another. On io_uring each receive
        # takes the next of the worker's ring of 1024 buffers of 4 KiB (net/uring_reactor.h),
        # so that the ring's memory is all touched, whoever sends; a flood would otherwise be
        # charged for it.
        subprocess.run(["h2load", "-n", "4000", "-c", "1", "-m", "1", f"http://127.0.0.1:{self.port()}/"],
                       check=True, capture_output=True, timeout=60)
        warm = Conn(self.port()).settled()  # and a large header list
        warm.pump(headers(1, padded_block(16000)), until=lambda c: 1 in c.status)
        self.assertEqual(warm.status.get(1), "200")
        warm.close()
        rss, peak = rss_kib(pid), rss_kib(pid, "VmHWM:")
        pad = literal(b"x-pad", b"a" * 4000)
        flood = [HeadersFrame(1, data=request_block("/") + pad * 3, flags=["END_STREAM"]).serialize()]
        while sum(map(len, flood)) < 10 * 1024 * 1024:
            flood.append(ContinuationFrame(1, data=pad * 4).serialize())  # 16 KiB frames, no END_HEADERS
        flood = b"".join(flood)
        for _ in range(3):
            before = self.usher.errors("web")
            conn = Conn(self.port())
            conn.pump(flood, until=lambda c: False, timeout=3.0)
            self.assert_calmed(conn, "continuation_flood", before=before)
        grown, peak_grown = rss_kib(pid) - rss, rss_kib(pid, "VmHWM:") - peak
        print(f"\nVmRSS {rss} -> {rss + grown} KiB, VmHWM {peak} -> {peak + peak_grown} KiB")
        if SANITIZED:
            self.skipTest("memory not bounded under AddressSanitizer (shadow memory, quarantine)")
        self.assertLess(grown, 4096)
        self.assertLess(peak_grown, 4096)


if __name__ == "__main__":
    unittest.main()
