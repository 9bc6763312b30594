"""h2spec's "http2/6.x" cases, RFC 9113 section 6: the rules of each frame type, SETTINGS and their
synchronisation, and flow control. Run through test_h2_conformance (its load_tests)."""
import h2frames as h2
from h2frames import (ACK, DATA, END_HEADERS, END_STREAM, ENABLE_PUSH, FLOW_CONTROL_ERROR, FRAME_SIZE_ERROR,
                      GOAWAY, HEADERS, INITIAL_WINDOW_SIZE, MAX_FRAME_SIZE, PADDED, PING, PRIORITY, PROTOCOL_ERROR,
                      RST_STREAM, SETTINGS, STREAM_CLOSED, WINDOW_UPDATE, H2Case, frame)

BODY_PATH = "/big?bytes=64"  # a response with DATA enough for the flow-control cases
PING_DATA = b"h2spec\0\0"


def setUpModule():
    h2.start_server()


def tearDownModule():
    h2.stop_server()


class DataFrames(H2Case):
    """RFC 9113 section 6.1."""

    def test_6_1_1_stream_0(self):
        """http2/6.1/1"""
        c = self.connect()
        c.send(h2.data(0, b"test"))
        c.expect_connection_error(PROTOCOL_ERROR)

    def test_6_1_2_stream_not_open(self):
        """http2/6.1/2: DATA after a HEADERS that ended the request."""
        c = self.connect()
        c.headers(1, c.request_fields("POST"))
        c.send(h2.data(1, b"test"))
        c.expect_stream_error(1, STREAM_CLOSED)

    def test_6_1_3_invalid_pad_length(self):
        """http2/6.1/3: a pad length of 6 in a DATA frame of 5 octets."""
        c = self.connect()
        self.post_open(c, extra=[("content-length", "4")])
        c.send(frame(DATA, PADDED | END_STREAM, 1, b"\x06Test"))
        c.expect_connection_error(PROTOCOL_ERROR)


class HeadersFrames(H2Case):
    """RFC 9113 section 6.2."""

    def test_6_2_1_priority_between_headers_and_continuation(self):
        """http2/6.2/1"""
        c = self.connect()
        c.headers(1, c.request_fields(), end_stream=False, end_headers=False)
        c.send(h2.priority(1))
        c.continuation(1, h2.dummy_fields(1))
        c.expect_connection_error(PROTOCOL_ERROR)

    def test_6_2_2_headers_of_another_stream_before_end_headers(self):
        """http2/6.2/2"""
        c = self.connect()
        c.headers(1, c.request_fields(), end_stream=False, end_headers=False)
        c.headers(3, c.request_fields())
        c.continuation(1, h2.dummy_fields(1))
        c.expect_connection_error(PROTOCOL_ERROR)

    def test_6_2_3_stream_0(self):
        """http2/6.2/3"""
        c = self.connect()
        c.headers(0, c.request_fields())
        c.expect_connection_error(PROTOCOL_ERROR)

    def test_6_2_4_invalid_pad_length(self):
        """http2/6.2/4: a pad length past the end of the frame."""
        c = self.connect()
        block = c.block(c.request_fields())
        c.send(frame(HEADERS, END_STREAM | END_HEADERS | PADDED, 1, bytes([len(block) + 2]) + block))
        c.expect_stream_error(1, PROTOCOL_ERROR)


class PriorityFrames(H2Case):
    """RFC 9113 section 6.3."""

    def test_6_3_1_stream_0(self):
        """http2/6.3/1"""
        c = self.connect()
        c.send(h2.priority(0))
        c.expect_connection_error(PROTOCOL_ERROR)

    def test_6_3_2_length_other_than_5(self):
        """http2/6.3/2"""
        c = self.connect()
        c.headers(1, c.request_fields())
        c.send(frame(PRIORITY, 0, 1, b"\x80\0\0\x01"))
        c.expect_stream_error(1, FRAME_SIZE_ERROR)


class RstStreamFrames(H2Case):
    """RFC 9113 section 6.4."""

    def test_6_4_1_stream_0(self):
        """http2/6.4/1"""
        c = self.connect()
        c.send(h2.rst_stream(0, h2.CANCEL))
        c.expect_connection_error(PROTOCOL_ERROR)

    def test_6_4_2_idle_stream(self):
        """http2/6.4/2"""
        c = self.connect()
        c.send(h2.rst_stream(1, h2.CANCEL))
        c.expect_connection_error(PROTOCOL_ERROR)

    def test_6_4_3_length_other_than_4(self):
        """http2/6.4/3"""
        c = self.connect()
        c.headers(1, c.request_fields())
        c.send(frame(RST_STREAM, 0, 1, b"\0\0\0"))
        c.expect_stream_error(1, FRAME_SIZE_ERROR)


class SettingsFrames(H2Case):
    """RFC 9113 sections 6.5, 6.5.2 and 6.5.3."""

    def test_6_5_1_ack_with_payload(self):
        """http2/6.5/1"""
        c = self.connect()
        c.send(frame(SETTINGS, ACK, 0, b"\0"))
        c.expect_connection_error(FRAME_SIZE_ERROR)

    def test_6_5_2_stream_other_than_0(self):
        """http2/6.5/2"""
        c = self.connect()
        c.send(h2.settings((h2.MAX_CONCURRENT_STREAMS, 100), stream=1))
        c.expect_connection_error(PROTOCOL_ERROR)

    def test_6_5_3_length_not_a_multiple_of_6(self):
        """http2/6.5/3"""
        c = self.connect()
        c.send(frame(SETTINGS, 0, 0, b"\0\x03\0"))
        c.expect_connection_error(PROTOCOL_ERROR, FRAME_SIZE_ERROR)

    def test_6_5_2_1_enable_push_2(self):
        """http2/6.5.2/1"""
        c = self.connect()
        c.send(h2.settings((ENABLE_PUSH, 2)))
        c.expect_connection_error(PROTOCOL_ERROR)

    def test_6_5_2_2_initial_window_size_over_2_31_minus_1(self):
        """http2/6.5.2/2"""
        c = self.connect()
        c.send(h2.settings((INITIAL_WINDOW_SIZE, 2 ** 31)))
        c.expect_connection_error(FLOW_CONTROL_ERROR)

    def test_6_5_2_3_max_frame_size_below_16384(self):
        """http2/6.5.2/3"""
        c = self.connect()
        c.send(h2.settings((MAX_FRAME_SIZE, 16383)))
        c.expect_connection_error(PROTOCOL_ERROR)

    def test_6_5_2_4_max_frame_size_over_2_24_minus_1(self):
        """http2/6.5.2/4"""
        c = self.connect()
        c.send(h2.settings((MAX_FRAME_SIZE, 2 ** 24)))
        c.expect_connection_error(PROTOCOL_ERROR)

    def test_6_5_2_5_unknown_setting_is_ignored(self):
        """http2/6.5.2/5"""
        c = self.connect()
        c.send(h2.settings((0xFF, 1)), h2.ping())
        c.expect_ping_ack(b"\0" * 8)

    def test_6_5_3_1_values_taken_in_order(self):
        """http2/6.5.3/1: INITIAL_WINDOW_SIZE 100 then 1 in one frame: the window is 1 octet."""
        c = self.connect()
        c.send(h2.settings((INITIAL_WINDOW_SIZE, 100), (INITIAL_WINDOW_SIZE, 1)))
        c.expect_settings_ack()
        c.headers(1, c.request_fields(path=BODY_PATH))
        self.assertEqual(c.expect_frame(DATA, 1).length, 1, c.transcript())

    def test_6_5_3_2_settings_acknowledged(self):
        """http2/6.5.3/2"""
        c = self.connect()
        c.send(h2.settings((ENABLE_PUSH, 0)))
        c.expect_settings_ack()


class PingFrames(H2Case):
    """RFC 9113 section 6.7."""

    def test_6_7_1_ping_answered_with_the_same_payload(self):
        """http2/6.7/1"""
        c = self.connect()
        c.send(h2.ping(PING_DATA))
        c.expect_ping_ack(PING_DATA)

    def test_6_7_2_ping_ack_not_answered(self):
        """http2/6.7/2: the first PING back answers the second PING sent, not the ACK."""
        c = self.connect()
        c.send(h2.ping(b"invalid\0", flags=ACK), h2.ping(PING_DATA))
        c.expect_ping_ack(PING_DATA)

    def test_6_7_3_stream_other_than_0(self):
        """http2/6.7/3"""
        c = self.connect()
        c.send(frame(PING, 0, 1, b"\0" * 8))
        c.expect_connection_error(PROTOCOL_ERROR)

    def test_6_7_4_length_other_than_8(self):
        """http2/6.7/4"""
        c = self.connect()
        c.send(frame(PING, 0, 0, b"\0" * 6))
        c.expect_connection_error(FRAME_SIZE_ERROR)


class GoawayFrames(H2Case):
    """RFC 9113 section 6.8."""

    def test_6_8_1_stream_other_than_0(self):
        """http2/6.8/1"""
        c = self.connect()
        c.send(frame(GOAWAY, 0, 1, b"\0" * 8))
        c.expect_connection_error(PROTOCOL_ERROR)


class WindowUpdateFrames(H2Case):
    """RFC 9113 section 6.9."""

    def test_6_9_1_increment_0_on_the_connection(self):
        """http2/6.9/1"""
        c = self.connect()
        c.send(h2.window_update(0, 0))
        c.expect_connection_error(PROTOCOL_ERROR)

    def test_6_9_2_increment_0_on_a_stream(self):
        """http2/6.9/2"""
        c = self.connect()
        c.headers(1, c.request_fields(), end_stream=False)
        c.send(h2.window_update(1, 0))
        c.expect_stream_error(1, PROTOCOL_ERROR)

    def test_6_9_3_length_other_than_4(self):
        """http2/6.9/3"""
        c = self.connect()
        c.send(frame(WINDOW_UPDATE, 0, 0, b"\0\0\x01"))
        c.expect_connection_error(FRAME_SIZE_ERROR)


class FlowControl(H2Case):
    """RFC 9113 sections 6.9.1 and 6.9.2: usher keeps within the client's windows, and refuses
    windows past 2^31-1."""

    def test_6_9_1_1_initial_window_of_1(self):
        """http2/6.9.1/1"""
        c = self.connect()
        c.send(h2.settings((INITIAL_WINDOW_SIZE, 1)))
        c.expect_settings_ack()
        c.headers(1, c.request_fields(path=BODY_PATH))
        self.assertEqual(c.expect_frame(DATA, 1).length, 1, c.transcript())

    def test_6_9_1_2_connection_window_over_2_31_minus_1(self):
        """http2/6.9.1/2: a GOAWAY (FLOW_CONTROL_ERROR) itself, not a bare close."""
        c = self.connect()
        c.send(h2.window_update(0, 2 ** 31 - 1), h2.window_update(0, 2 ** 31 - 1))
        c.expect_goaway(FLOW_CONTROL_ERROR)

    def test_6_9_1_3_stream_window_over_2_31_minus_1(self):
        """http2/6.9.1/3: a RST_STREAM (FLOW_CONTROL_ERROR) itself."""
        c = self.connect()
        c.headers(1, c.request_fields(), end_stream=False)
        c.send(h2.window_update(1, 2 ** 31 - 1), h2.window_update(1, 2 ** 31 - 1))
        c.expect_rst(1, FLOW_CONTROL_ERROR)

    def test_6_9_2_1_initial_window_changed_after_headers(self):
        """http2/6.9.2/1: window 0, the request, then window 1: one octet of DATA."""
        c = self.connect()
        c.send(h2.settings((INITIAL_WINDOW_SIZE, 0)))
        c.expect_settings_ack()
        c.headers(1, c.request_fields(path=BODY_PATH))
        c.send(h2.settings((INITIAL_WINDOW_SIZE, 1)))
        self.assertEqual(c.expect_frame(DATA, 1).length, 1, c.transcript())

    def test_6_9_2_2_negative_window(self):
        """http2/6.9.2/2: window 3, 3 octets sent, window made 2 (so -1), WINDOW_UPDATE of 2:
        one octet more."""
        c = self.connect()
        c.send(h2.settings((INITIAL_WINDOW_SIZE, 3)))
        c.expect_settings_ack()
        c.headers(1, c.request_fields(path=BODY_PATH))
        self.assertEqual(c.expect_frame(DATA, 1).length, 3, c.transcript())
        c.send(h2.settings((INITIAL_WINDOW_SIZE, 2)))
        c.expect_settings_ack()
        c.send(h2.window_update(1, 2))
        self.assertEqual(c.expect_frame(DATA, 1).length, 1, c.transcript())

    def test_6_9_2_3_initial_window_size_over_the_maximum(self):
        """http2/6.9.2/3"""
        c = self.connect()
        c.send(frame(SETTINGS, 0, 0, b"\0\x04\x80\0\0\0"))
        c.expect_connection_error(FLOW_CONTROL_ERROR)


class ContinuationFrames(H2Case):
    """RFC 9113 section 6.10."""

    def test_6_10_1_several_continuations_accepted(self):
        """http2/6.10/1"""
        c = self.connect()
        c.headers(1, c.request_fields(), end_headers=False)
        c.continuation(1, h2.dummy_fields(1), end_headers=False)
        c.continuation(1, h2.dummy_fields(1))
        c.expect_frame(HEADERS, 1)

    def test_6_10_2_other_frame_after_continuation(self):
        """http2/6.10/2: DATA before the header block ended."""
        c = self.connect()
        c.headers(1, c.request_fields("POST"), end_stream=False, end_headers=False)
        c.continuation(1, h2.dummy_fields(1), end_headers=False)
        c.send(h2.data(1, b"test"))
        c.expect_connection_error(PROTOCOL_ERROR)

    def test_6_10_3_stream_0(self):
        """http2/6.10/3"""
        c = self.connect()
        c.headers(1, c.request_fields(), end_headers=False)
        c.continuation(0, h2.dummy_fields(1))
        c.expect_connection_error(PROTOCOL_ERROR)

    def test_6_10_4_after_headers_with_end_headers(self):
        """http2/6.10/4"""
        c = self.connect()
        c.headers(1, c.request_fields())
        c.continuation(1, h2.dummy_fields(1))
        c.expect_connection_error(PROTOCOL_ERROR)

    def test_6_10_5_after_continuation_with_end_headers(self):
        """http2/6.10/5"""
        c = self.connect()
        c.headers(1, c.request_fields(), end_headers=False)
        c.continuation(1, h2.dummy_fields(1))
        c.continuation(1, h2.dummy_fields(1))
        c.expect_connection_error(PROTOCOL_ERROR)

    def test_6_10_6_after_data(self):
        """http2/6.10/6: HEADERS without END_HEADERS, DATA, then CONTINUATIONs."""
        c = self.connect()
        c.headers(1, c.request_fields("POST"), end_stream=False, end_headers=False)
        c.send(h2.data(1, b"test"))
        c.continuation(1, h2.dummy_fields(1), end_headers=False)
        c.continuation(0, h2.dummy_fields(1))
        c.expect_connection_error(PROTOCOL_ERROR)
