"""HTTP/2 conformance of usher's client side, case by case as h2spec checks it (its "http2" groups,
RFC 9113 sections 3 to 8, and its "hpack" group, RFC 7541): raw frames, malformed ones included,
over h2c with prior knowledge to a plain listener, and the exact answer each case requires — the
GOAWAY or RST_STREAM error code, the PING or SETTINGS acknowledgement, the DATA frame a flow-control
window allows. Each test names its h2spec case ("http2/6.5.2/3": group 6.5.2, third case).
Requests that get through are served by an HTTP/1 backend."""
import socket
import time

import h2_conformance_frames
import h2_conformance_http
import h2frames as h2
from h2frames import (ACK, COMPRESSION_ERROR, END_HEADERS, END_STREAM, FRAME_SIZE_ERROR, HEADERS,
                      INITIAL_WINDOW_SIZE, MAX_STREAMS, PING, PROTOCOL_ERROR, REFUSED_STREAM, SETTINGS,
                      STREAM_CLOSED, H2Case, frame)

def setUpModule():
    h2.start_server()


def tearDownModule():
    h2.stop_server()


def load_tests(loader, tests, pattern):
    """Sections 6 to 8 and RFC 7541 are in modules of their own, each with its own usher."""
    for module in (h2_conformance_frames, h2_conformance_http):
        tests.addTests(loader.loadTestsFromModule(module))
    return tests


class ConnectionPreface(H2Case):
    """RFC 9113 section 3.4."""

    def test_3_5_1_server_preface_is_a_settings_frame(self):
        """http2/3.5/1: the first frame usher sends is SETTINGS, not an acknowledgement."""
        c = self.connect(handshake=False)
        c.send(h2.PREFACE, h2.settings((INITIAL_WINDOW_SIZE, 65535)))
        first = c.next_frame(time.monotonic() + h2.TIMEOUT)
        if not (isinstance(first, h2.Received) and first.kind == SETTINGS and not first.flags & ACK):
            c.fail("SETTINGS without ACK as the first frame")

    def test_3_5_2_invalid_preface_ends_the_connection(self):
        """http2/3.5/2: an invalid preface ends the connection. The listener speaks HTTP/1.1 as
        well, and these bytes are no HTTP/2 preface: an HTTP/1.1 error answer before the close is
        allowed, as is a GOAWAY (PROTOCOL_ERROR); nothing else."""
        with socket.create_connection(("127.0.0.1", h2.server_port()), timeout=h2.TIMEOUT) as s:
            s.sendall(b"INVALID CONNECTION PREFACE\r\n\r\n")
            answer, deadline = b"", time.monotonic() + h2.TIMEOUT
            while time.monotonic() < deadline:
                try:
                    chunk = s.recv(65536)
                except socket.timeout:
                    self.fail(f"the connection stayed open; received {answer!r}")
                except ConnectionResetError:
                    break
                if not chunk:
                    break
                answer += chunk
            else:
                self.fail(f"the connection stayed open; received {answer!r}")
        goaway = answer[3:4] == bytes([h2.GOAWAY]) and answer[13:17] == PROTOCOL_ERROR.to_bytes(4, "big")
        self.assertTrue(answer == b"" or goaway or answer.startswith(b"HTTP/1.1 4"), answer)


class FrameFormat(H2Case):
    """RFC 9113 section 4.1: unknown types, undefined flags and the reserved bit are ignored."""

    def test_4_1_1_unknown_frame_type_is_ignored(self):
        """http2/4.1/1"""
        c = self.connect()
        c.send(frame(0x16, 0, 0, b"\0" * 8), h2.ping())
        c.expect_ping_ack(b"\0" * 8)

    def test_4_1_2_undefined_flags_are_ignored(self):
        """http2/4.1/2: a PING with flags 0x16 (ACK not among them) is still a PING to answer."""
        c = self.connect()
        c.send(frame(PING, 0x16, 0, b"\0" * 8))
        c.expect_ping_ack(b"\0" * 8)

    def test_4_1_3_reserved_bit_is_ignored(self):
        """http2/4.1/3: a PING whose stream identifier has the reserved bit set."""
        c = self.connect()
        c.send(frame(PING, 0x16, 0x80000000, b"\0" * 8))
        c.expect_ping_ack(b"\0" * 8)


class FrameSize(H2Case):
    """RFC 9113 section 4.2."""

    def test_4_2_1_data_of_2_14_octets_is_taken(self):
        """http2/4.2/1"""
        c = self.connect()
        self.post_open(c)
        c.send(h2.data(1, b"x" * 16384))
        c.expect_frame(HEADERS, 1)

    def test_4_2_2_data_over_max_frame_size(self):
        """http2/4.2/2"""
        c = self.connect()
        self.post_open(c)
        c.send(h2.data(1, b"x" * 16385))
        c.expect_stream_error(1, FRAME_SIZE_ERROR)

    def test_4_2_3_headers_over_max_frame_size(self):
        """http2/4.2/3: a header block of more than 16384 octets in one HEADERS frame."""
        c = self.connect()
        block = c.block(c.request_fields() + h2.dummy_fields(5))
        self.assertGreater(len(block), 16384)
        c.headers(1, block)
        c.expect_connection_error(FRAME_SIZE_ERROR)


class HeaderCompression(H2Case):
    """RFC 9113 section 4.3: header blocks are decoded, and sent as one contiguous sequence."""

    def test_4_3_1_invalid_header_block(self):
        """http2/4.3/1"""
        c = self.connect()
        c.send(frame(HEADERS, END_STREAM | END_HEADERS, 1, b"\x40"))
        c.expect_connection_error(COMPRESSION_ERROR)

    def test_4_3_2_priority_inside_a_header_block(self):
        """http2/4.3/2"""
        c = self.connect()
        c.headers(1, c.request_fields(), end_stream=False, end_headers=False)
        c.send(h2.priority(1))
        c.continuation(1, h2.dummy_fields(1))
        c.expect_connection_error(PROTOCOL_ERROR)

    def test_4_3_3_headers_of_another_stream_inside_a_header_block(self):
        """http2/4.3/3"""
        c = self.connect()
        c.headers(1, c.request_fields(), end_stream=False, end_headers=False)
        c.headers(3, c.request_fields())
        c.continuation(1, h2.dummy_fields(1))
        c.expect_connection_error(PROTOCOL_ERROR)


class StreamStates(H2Case):
    """RFC 9113 section 5.1: frames on idle, half-closed (remote) and closed streams."""

    def test_5_1_01_idle_data(self):
        """http2/5.1/1"""
        c = self.connect()
        c.send(h2.data(1, b"test"))
        c.expect_stream_error(1, PROTOCOL_ERROR, STREAM_CLOSED)

    def test_5_1_02_idle_rst_stream(self):
        """http2/5.1/2"""
        c = self.connect()
        c.send(h2.rst_stream(1, h2.CANCEL))
        c.expect_connection_error(PROTOCOL_ERROR)

    def test_5_1_03_idle_window_update(self):
        """http2/5.1/3"""
        c = self.connect()
        c.send(h2.window_update(1, 100))
        c.expect_connection_error(PROTOCOL_ERROR)

    def test_5_1_04_idle_continuation(self):
        """http2/5.1/4"""
        c = self.connect()
        c.continuation(1, c.request_fields())
        c.expect_connection_error(PROTOCOL_ERROR)

    def test_5_1_05_half_closed_remote_data(self):
        """http2/5.1/5"""
        c = self.connect()
        c.headers(1, c.request_fields())
        c.send(h2.data(1, b"test"))
        c.expect_stream_error(1, STREAM_CLOSED)

    def test_5_1_06_half_closed_remote_headers(self):
        """http2/5.1/6"""
        c = self.connect()
        c.headers(1, c.request_fields())
        c.headers(1, c.request_fields())
        c.expect_stream_error(1, STREAM_CLOSED)

    def test_5_1_07_half_closed_remote_continuation(self):
        """http2/5.1/7"""
        c = self.connect()
        block = c.block(c.request_fields())
        c.headers(1, block)
        c.continuation(1, block)
        c.expect_stream_error(1, STREAM_CLOSED, PROTOCOL_ERROR)

    def test_5_1_08_data_after_rst_stream(self):
        """http2/5.1/8"""
        c = self.connect()
        c.headers(1, c.request_fields(), end_stream=False)
        c.send(h2.rst_stream(1, h2.CANCEL))
        c.send(h2.data(1, b"test"))
        c.expect_stream_error(1, STREAM_CLOSED)

    def test_5_1_09_headers_after_rst_stream(self):
        """http2/5.1/9"""
        c = self.connect()
        c.headers(1, c.request_fields(), end_stream=False)
        c.send(h2.rst_stream(1, h2.CANCEL))
        c.headers(1, c.request_fields())
        c.expect_stream_error(1, STREAM_CLOSED)

    def test_5_1_10_continuation_after_rst_stream(self):
        """http2/5.1/10"""
        c = self.connect()
        c.headers(1, c.request_fields(), end_stream=False)
        c.send(h2.rst_stream(1, h2.CANCEL))
        c.continuation(1, h2.dummy_fields(1))
        c.expect_stream_error(1, STREAM_CLOSED, PROTOCOL_ERROR)

    def test_5_1_11_closed_data(self):
        """http2/5.1/11: DATA on a stream whose response was whole."""
        c = self.connect()
        c.headers(1, c.request_fields())
        c.expect_response(1)
        c.send(h2.data(1, b"test"))
        c.expect_stream_error(1, STREAM_CLOSED)

    def test_5_1_12_closed_headers(self):
        """http2/5.1/12"""
        c = self.connect()
        block = c.block(c.request_fields())
        c.headers(1, block)
        c.expect_response(1)
        c.headers(1, block)
        c.expect_connection_error(STREAM_CLOSED)

    def test_5_1_13_closed_continuation(self):
        """http2/5.1/13"""
        c = self.connect()
        c.headers(1, c.request_fields())
        c.expect_response(1)
        c.continuation(1, h2.dummy_fields(1))
        c.expect_connection_error(STREAM_CLOSED, PROTOCOL_ERROR)


class StreamIdentifiers(H2Case):
    """RFC 9113 section 5.1.1."""

    def test_5_1_1_1_even_stream_identifier(self):
        """http2/5.1.1/1"""
        c = self.connect()
        c.headers(2, c.request_fields())
        c.expect_connection_error(PROTOCOL_ERROR)

    def test_5_1_1_2_smaller_stream_identifier(self):
        """http2/5.1.1/2"""
        c = self.connect()
        c.headers(5, c.request_fields())
        c.headers(3, c.request_fields())
        c.expect_connection_error(PROTOCOL_ERROR)


class StreamConcurrency(H2Case):
    """RFC 9113 section 5.1.2."""

    def test_5_1_2_1_streams_past_the_advertised_limit(self):
        """http2/5.1.2/1: with no window for their DATA, responses cannot end, and the stream
        past SETTINGS_MAX_CONCURRENT_STREAMS is refused."""
        c = self.connect()
        self.assertEqual(c.server_settings.get(h2.MAX_CONCURRENT_STREAMS), MAX_STREAMS)
        c.send(h2.settings((INITIAL_WINDOW_SIZE, 0)))
        block = c.block(c.request_fields())
        for stream in range(1, 2 * MAX_STREAMS + 2, 2):
            c.headers(stream, block)
        c.expect_stream_error(2 * MAX_STREAMS + 1, PROTOCOL_ERROR, REFUSED_STREAM)


class StreamDependencies(H2Case):
    """RFC 9113 section 5.3.1: a stream cannot depend on itself."""

    def test_5_3_1_1_headers_depending_on_itself(self):
        """http2/5.3.1/1"""
        c = self.connect()
        c.headers(1, c.request_fields(), depends_on=1)
        c.expect_stream_error(1, PROTOCOL_ERROR)

    def test_5_3_1_2_priority_depending_on_itself(self):
        """http2/5.3.1/2"""
        c = self.connect()
        c.send(h2.priority(1, depends_on=1))
        c.expect_stream_error(1, PROTOCOL_ERROR)


class ConnectionErrorHandling(H2Case):
    """RFC 9113 section 5.4.1: a connection error sends GOAWAY and closes the TCP connection."""

    def test_5_4_1_1_connection_closes(self):
        """http2/5.4.1/1: a PING on stream 3."""
        c = self.connect()
        c.send(frame(PING, 0, 3, b"\0" * 8))
        c.expect_close()

    def test_5_4_1_2_goaway_first(self):
        """http2/5.4.1/2 (strict): the same, and a GOAWAY (PROTOCOL_ERROR) before the close."""
        c = self.connect()
        c.send(frame(PING, 0, 3, b"\0" * 8))
        c.expect_goaway(PROTOCOL_ERROR)


class ExtendingHttp2(H2Case):
    """RFC 9113 section 5.5."""

    def test_5_5_1_unknown_extension_frame(self):
        """http2/5.5/1"""
        c = self.connect()
        c.send(frame(0x16, 0, 0, b"\0" * 8), h2.ping())
        c.expect_ping_ack(b"\0" * 8)

    def test_5_5_2_unknown_extension_frame_inside_a_header_block(self):
        """http2/5.5/2"""
        c = self.connect()
        c.headers(1, c.request_fields(), end_headers=False)
        c.send(frame(0x16, 0, 0, b"\0" * 8))
        c.expect_connection_error(PROTOCOL_ERROR)
