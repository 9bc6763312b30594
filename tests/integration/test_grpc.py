"""gRPC through usher, end to end: grpcio clients in front, grpcio servers behind a pool with
`protocol: h2` (h2c with prior knowledge to the backends). Unary calls on one client channel are
balanced per call, not per connection; a 30 s server stream outlives the pool's 5 s response
timeout and arrives whole; error statuses arrive intact, trailers-only (nothing sent before the
error) or after messages; request metadata reaches the server and initial and trailing metadata
(text and -bin) reach the client; `grpc-timeout` is the call's deadline, and usher itself answers
DEADLINE_EXCEEDED (grpc-status 4) when a backend stays silent past it, resetting that backend's
stream; with no backend to reach, usher answers UNAVAILABLE (grpc-status 14) as a gRPC status, not
an HTML page; and the same calls work over TLS (h2 chosen by ALPN).

The gRPC servers use generic handlers with bytes in and out (no generated code): each answers
with its own name so that the test sees which one served a call."""
import os
import socket
import struct
import threading
import time
import unittest
from concurrent.futures import ThreadPoolExecutor

import grpc
import h2.config
import h2.connection
import h2.events

from h2peers import H2
from harness import USHER, Process, free_port, tls_certificate, wait_port, write_config

SERVICE = "svc.Echo"
# grpcio honours http_proxy/https_proxy from the environment; these calls stay on loopback.
CHANNEL_OPTIONS = [("grpc.enable_http_proxy", 0)]
STREAM_MESSAGES, STREAM_INTERVAL = 60, 0.5  # 30 s, well past the pool's 5 s response timeout


class EchoServer:
    """A grpcio server in this process; every answer starts with its name. Records the request
    metadata of each Meta call."""

    def __init__(self, name):
        self.name, self.metadata = name, []
        handlers = {
            "Say": grpc.unary_unary_rpc_method_handler(self.say),
            "Meta": grpc.unary_unary_rpc_method_handler(self.meta),
            "Missing": grpc.unary_unary_rpc_method_handler(self.missing),
            "Sleep": grpc.unary_unary_rpc_method_handler(self.sleep),
            "Tick": grpc.unary_stream_rpc_method_handler(self.tick),
        }
        self.server = grpc.server(ThreadPoolExecutor(max_workers=8))
        self.server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()

    def stop(self):
        self.server.stop(grace=None).wait(10)

    def say(self, request, context):
        return self.name.encode() + b":" + request

    def meta(self, request, context):
        self.metadata.append(tuple(context.invocation_metadata()))
        context.send_initial_metadata((("x-initial", self.name),))
        context.set_trailing_metadata((("x-served-by", self.name), ("x-digest-bin", b"\x00\xff\x10\r\n")))
        return self.name.encode()

    def missing(self, request, context):
        # Nothing was sent before the abort: grpcio answers trailers-only (one HEADERS frame).
        context.abort(grpc.StatusCode.NOT_FOUND, "no such thing: " + request.decode())

    def sleep(self, request, context):
        ends = time.monotonic() + float(request)
        while context.is_active() and time.monotonic() < ends:
            time.sleep(0.02)
        return self.name.encode()

    def tick(self, request, context):
        """Request "COUNT INTERVAL [abort]": COUNT messages INTERVAL s apart, then with `abort` a
        RESOURCE_EXHAUSTED status after them."""
        count, interval, *abort = request.decode().split()
        for i in range(int(count)):
            if i:
                time.sleep(float(interval))
            yield f"{self.name}:{i}".encode()
        if abort:
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "enough after " + count)


class SilentH2Backend:
    """An h2c backend that takes requests and never answers them; counts the streams it was sent
    and the ones reset by its peer."""

    def __init__(self):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.lock, self.requests, self.resets, self.socks = threading.Lock(), 0, 0, []
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while True:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            with self.lock:
                self.socks.append(sock)
            threading.Thread(target=self.serve, args=(sock,), daemon=True).start()

    def serve(self, sock):
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
        conn.initiate_connection()
        try:
            sock.sendall(conn.data_to_send())
            while data := sock.recv(1 << 16):
                for event in conn.receive_data(data):
                    with self.lock:
                        if isinstance(event, h2.events.RequestReceived):
                            self.requests += 1
                        elif isinstance(event, h2.events.StreamReset):
                            self.resets += 1
                    if isinstance(event, h2.events.DataReceived):
                        conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                sock.sendall(conn.data_to_send())
        except Exception:  # the peer went away, or usher ended the test's connection: nothing to do
            pass

    def counts(self):
        with self.lock:
            return self.requests, self.resets

    def stop(self):
        self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        with self.lock:
            for sock in self.socks:
                sock.close()


def grpc_frame(message):
    """A message as gRPC puts it in DATA frames: uncompressed flag, 4-byte length, bytes."""
    return struct.pack(">BI", 0, len(message)) + message


def raw_call(port, method, message, fields=()):
    """A gRPC call made frame by frame with python h2 (h2c), so that what usher answers is seen
    as sent; returns (response, {header or trailer: value}, seconds taken)."""
    client = H2(port)
    try:
        started = time.monotonic()
        head = [("content-type", "application/grpc"), ("te", "trailers"), *fields]
        response = client.request("POST", f"/{SERVICE}/{method}", head, grpc_frame(message))
        return response, dict(response.headers + response.trailers), time.monotonic() - started
    finally:
        client.close()


class Grpc(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.servers = [EchoServer("a"), EchoServer("b")]
        cls.silent = SilentH2Backend()
        cls.port, cls.tls_port, cls.dead_port, cls.silent_port = (free_port() for _ in range(4))
        dead = ", ".join(f"127.0.0.1:{free_port()}" for _ in range(2))  # nothing listens there
        live = ", ".join(f"127.0.0.1:{s.port}" for s in cls.servers)
        cert, key = tls_certificate()
        tls = f"    tls: {{ certificates: [{{ cert: {cert}, key: {key} }}], alpn: [h2, http/1.1] }}\n"
        listener = "  - name: {}\n    listen: 127.0.0.1:{}\n    pool: {}\n{}".format
        config = (
            "workers: 2\nlisteners:\n"
            + listener("front", cls.port, "grpc", "")
            + listener("secure", cls.tls_port, "grpc", tls)
            + listener("dead", cls.dead_port, "dead", "")
            + listener("silent", cls.silent_port, "silent", "")
            + "pools:\n"
            f"  - name: grpc\n    protocol: h2\n    balance: round-robin\n    timeouts: {{ response: 5s }}\n"
            f"    backends: [{live}]\n"
            f"  - name: dead\n    protocol: h2\n    backends: [{dead}]\n"
            f"  - name: silent\n    protocol: h2\n    backends: [127.0.0.1:{cls.silent.port}]\n")
        cls.config = write_config(config)
        cls.usher = Process([USHER, "run", "-c", cls.config], port=cls.port)
        for port in (cls.tls_port, cls.dead_port, cls.silent_port):
            wait_port(port)

    @classmethod
    def tearDownClass(cls):
        cls.usher.stop()
        for server in cls.servers:
            server.stop()
        cls.silent.stop()
        os.unlink(cls.config)

    def channel(self, port=None):
        channel = grpc.insecure_channel(f"127.0.0.1:{port or self.port}", options=CHANNEL_OPTIONS)
        self.addCleanup(channel.close)
        return channel

    def tls_channel(self):
        with open(tls_certificate()[0], "rb") as f:
            credentials = grpc.ssl_channel_credentials(root_certificates=f.read())
        channel = grpc.secure_channel(f"127.0.0.1:{self.tls_port}", credentials, options=CHANNEL_OPTIONS)
        self.addCleanup(channel.close)
        return channel

    @staticmethod
    def method(channel, name):
        return channel.unary_unary(f"/{SERVICE}/{name}", request_serializer=None, response_deserializer=None)

    def failure(self, call, *args, **kwargs):
        """The grpc.RpcError a call ends with, and how long it took."""
        started = time.monotonic()
        with self.assertRaises(grpc.RpcError) as caught:
            call(*args, **kwargs)
        return caught.exception, time.monotonic() - started

    def assert_alternates(self, answers, count):
        names = [a.split(b":")[0] for a in answers]
        self.assertEqual(len(answers), count)
        self.assertEqual(sorted(set(names)), [b"a", b"b"], answers)
        for i in range(1, count):
            self.assertNotEqual(names[i], names[i - 1], f"call {i} went to the same server: {names}")

    def test_unary_calls_on_one_channel_are_balanced_per_call(self):
        say = self.method(self.channel(), "Say")
        answers = [say(b"%d" % i, timeout=5) for i in range(20)]
        self.assertEqual([a.split(b":", 1)[1] for a in answers], [b"%d" % i for i in range(20)])
        self.assert_alternates(answers, 20)

    def test_a_long_server_stream_outlives_the_response_timeout_and_arrives_whole(self):
        tick = self.channel().unary_stream(f"/{SERVICE}/Tick", request_serializer=None,
                                           response_deserializer=None)
        started = time.monotonic()
        lasts = (STREAM_MESSAGES - 1) * STREAM_INTERVAL
        call = tick(f"{STREAM_MESSAGES} {STREAM_INTERVAL}".encode(), timeout=lasts + 15)
        messages = list(call)
        took = time.monotonic() - started
        self.assertEqual(call.code(), grpc.StatusCode.OK, call.details())
        server = messages[0].split(b":")[0] if messages else b"?"
        self.assertEqual(messages, [b"%s:%d" % (server, i) for i in range(STREAM_MESSAGES)])
        self.assertGreater(took, lasts - 1)  # it really lasted

    def test_an_error_status_arrives_intact(self):
        error, _ = self.failure(self.method(self.channel(), "Missing"), b"thing-7", timeout=5)
        self.assertEqual((error.code(), error.details()),
                         (grpc.StatusCode.NOT_FOUND, "no such thing: thing-7"))
        # The same status through the raw client: trailers-only, as grpcio sent it.
        response, fields, _ = raw_call(self.port, "Missing", b"thing-8")
        self.assertEqual((response.status, response.body), (200, b""), (response.headers, response.trailers))
        self.assertEqual((fields.get("grpc-status"), fields.get("grpc-message")),
                         ("5", "no such thing: thing-8"))

    def test_an_error_status_after_streamed_messages_arrives_in_the_trailers(self):
        tick = self.channel().unary_stream(f"/{SERVICE}/Tick", request_serializer=None,
                                           response_deserializer=None)
        call = tick(b"3 0.05 abort", timeout=5)
        messages = []
        with self.assertRaises(grpc.RpcError):
            for message in call:
                messages.append(message)
        self.assertEqual(len(messages), 3, messages)
        self.assertEqual((call.code(), call.details()),
                         (grpc.StatusCode.RESOURCE_EXHAUSTED, "enough after 3"))

    def test_metadata_reaches_the_server_and_trailing_metadata_the_client(self):
        sent = (("x-request-tag", "tag-42"), ("x-blob-bin", b"\x00\x01\xfe\xff"))
        answer, call = self.method(self.channel(), "Meta").with_call(b"", metadata=sent, timeout=5)
        server = next(s for s in self.servers if s.name.encode() == answer)
        seen = dict(server.metadata[-1])
        self.assertEqual((seen.get("x-request-tag"), seen.get("x-blob-bin")),
                         ("tag-42", b"\x00\x01\xfe\xff"), seen)
        self.assertIn(("x-initial", server.name), tuple(call.initial_metadata()))
        trailing = dict(call.trailing_metadata())
        self.assertEqual((trailing.get("x-served-by"), trailing.get("x-digest-bin")),
                         (server.name, b"\x00\xff\x10\r\n"), trailing)

    def test_a_call_past_its_deadline_ends_deadline_exceeded(self):
        error, took = self.failure(self.method(self.channel(), "Sleep"), b"3", timeout=1)
        self.assertEqual(error.code(), grpc.StatusCode.DEADLINE_EXCEEDED, error.details())
        self.assertLess(took, 1.5)

    def test_usher_answers_deadline_exceeded_when_a_backend_stays_silent(self):
        """No client-side deadline here (the raw client waits 10 s) and the backend never answers:
        only usher, holding grpc-timeout as the deadline, ends the call; its pool's response
        timeout is the default 30 s."""
        before = self.silent.counts()
        response, fields, took = raw_call(self.silent_port, "Say", b"x", [("grpc-timeout", "1S")])
        self.assertEqual((response.status, fields.get("grpc-status")), (200, "4"),
                         (response.headers, response.trailers, response.body))
        self.assertTrue(fields.get("content-type", "").startswith("application/grpc"), fields)
        self.assertEqual(response.body, b"")
        self.assertGreater(took, 0.9)
        self.assertLess(took, 1.5)
        self.assertEqual(self.silent.counts()[0], before[0] + 1)  # it did reach the backend
        deadline = time.monotonic() + 2
        while self.silent.counts()[1] <= before[1] and time.monotonic() < deadline:
            time.sleep(0.02)
        self.assertEqual(self.silent.counts()[1], before[1] + 1, "the backend's stream was not reset")

    def test_no_backend_to_reach_is_unavailable_as_a_grpc_status(self):
        error, _ = self.failure(self.method(self.channel(self.dead_port), "Say"), b"x", timeout=10)
        self.assertEqual(error.code(), grpc.StatusCode.UNAVAILABLE, error.details())
        # grpcio makes this message up from the HTTP status when no grpc-status came.
        self.assertNotIn("http2 header with status", error.details() or "")
        response, fields, _ = raw_call(self.dead_port, "Say", b"x")
        self.assertEqual((response.status, fields.get("grpc-status")), (200, "14"),
                         (response.headers, response.trailers, response.body))
        self.assertTrue(fields.get("content-type", "").startswith("application/grpc"), fields)
        self.assertEqual(response.body, b"")  # no HTML page

    def test_calls_over_tls_with_h2_by_alpn(self):
        channel = self.tls_channel()
        answers = [self.method(channel, "Say")(b"%d" % i, timeout=5) for i in range(4)]
        self.assert_alternates(answers, 4)
        error, _ = self.failure(self.method(channel, "Missing"), b"over-tls", timeout=5)
        self.assertEqual((error.code(), error.details()),
                         (grpc.StatusCode.NOT_FOUND, "no such thing: over-tls"))


if __name__ == "__main__":
    unittest.main()
