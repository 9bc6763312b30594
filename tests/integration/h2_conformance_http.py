"""h2spec's "http2/7" and "http2/8.x" cases (RFC 9113 sections 7 and 8: error codes, HTTP messages,
their fields and pseudo-fields, server push) and its "hpack" cases (RFC 7541: decoding errors are
COMPRESSION_ERROR). Run through test_h2_conformance (its load_tests)."""
import struct

import h2frames as h2
from h2frames import (COMPRESSION_ERROR, END_HEADERS, HEADER_TABLE_SIZE, PROTOCOL_ERROR, PUSH_PROMISE, H2Case,
                      frame)
from hpack.hpack import encode_integer

PING_DATA = b"h2spec\0\0"


def setUpModule():
    h2.start_server()


def tearDownModule():
    h2.stop_server()


class ErrorCodes(H2Case):
    """RFC 9113 section 7: unknown error codes trigger nothing special."""

    def test_7_1_goaway_with_unknown_code(self):
        """http2/7/1: a PING is still answered (or the connection closes, after the GOAWAY)."""
        c = self.connect()
        c.send(h2.goaway(0, 0xFF), h2.ping(PING_DATA))
        c.expect_ping_ack(PING_DATA, close_ok=True)

    def test_7_2_rst_stream_with_unknown_code(self):
        """http2/7/2"""
        c = self.connect()
        self.post_open(c)
        c.send(h2.rst_stream(1, 0xFF), h2.ping())
        c.expect_ping_ack(b"\0" * 8, close_ok=True)


class MessageExchange(H2Case):
    """RFC 9113 section 8.1: a request is HEADERS, DATA, and trailers that end the stream."""

    def test_8_1_1_second_headers_without_end_stream(self):
        """http2/8.1/1"""
        c = self.connect()
        self.post_open(c)
        c.send(h2.data(1, b"test", end_stream=False))
        c.headers(1, [("x-test", "ok")], end_stream=False)
        c.expect_stream_error(1, PROTOCOL_ERROR)


class HeaderFields(H2Case):
    """RFC 9113 sections 8.1.2 to 8.1.2.6 (8.2 and 8.3 in RFC 9113's numbering): malformed requests
    are stream errors of type PROTOCOL_ERROR."""

    def malformed(self, fields, end_stream=True):
        c = self.connect()
        c.headers(1, fields(c) if callable(fields) else fields, end_stream=end_stream)
        return c

    def test_8_1_2_1_uppercase_field_name(self):
        """http2/8.1.2/1"""
        self.malformed(lambda c: c.request_fields() + [("X-TEST", "ok")]).expect_stream_error(1, PROTOCOL_ERROR)

    def test_8_1_2_1_1_unknown_pseudo_field(self):
        """http2/8.1.2.1/1"""
        self.malformed(lambda c: c.request_fields() + [(":test", "ok")]).expect_stream_error(1, PROTOCOL_ERROR)

    def test_8_1_2_1_2_response_pseudo_field(self):
        """http2/8.1.2.1/2"""
        self.malformed(lambda c: c.request_fields() + [(":status", "200")]).expect_stream_error(1, PROTOCOL_ERROR)

    def test_8_1_2_1_3_pseudo_field_in_trailers(self):
        """http2/8.1.2.1/3"""
        c = self.connect()
        self.post_open(c)
        c.send(h2.data(1, b"test", end_stream=False))
        c.headers(1, [(":method", "POST")], end_stream=False)
        c.expect_stream_error(1, PROTOCOL_ERROR)

    def test_8_1_2_1_4_pseudo_field_after_a_regular_one(self):
        """http2/8.1.2.1/4"""
        self.malformed(lambda c: [("x-test", "ok")] + c.request_fields()).expect_stream_error(1, PROTOCOL_ERROR)

    def test_8_1_2_2_1_connection_specific_field(self):
        """http2/8.1.2.2/1"""
        c = self.malformed(lambda c: c.request_fields() + [("connection", "keep-alive")])
        c.expect_stream_error(1, PROTOCOL_ERROR)

    def test_8_1_2_2_2_te_other_than_trailers(self):
        """http2/8.1.2.2/2"""
        c = self.malformed(lambda c: c.request_fields() + [("trailers", "test"), ("te", "trailers, deflate")])
        c.expect_stream_error(1, PROTOCOL_ERROR)

    def without(self, name):
        return lambda c: [f for f in c.request_fields() if f[0] != name]

    def doubled(self, name):
        return lambda c: c.request_fields() + [f for f in c.request_fields() if f[0] == name]

    def test_8_1_2_3_1_empty_path(self):
        """http2/8.1.2.3/1"""
        self.malformed(lambda c: c.request_fields(path="")).expect_stream_error(1, PROTOCOL_ERROR)

    def test_8_1_2_3_2_no_method(self):
        """http2/8.1.2.3/2"""
        self.malformed(self.without(":method")).expect_stream_error(1, PROTOCOL_ERROR)

    def test_8_1_2_3_3_no_scheme(self):
        """http2/8.1.2.3/3"""
        self.malformed(self.without(":scheme")).expect_stream_error(1, PROTOCOL_ERROR)

    def test_8_1_2_3_4_no_path(self):
        """http2/8.1.2.3/4"""
        self.malformed(self.without(":path")).expect_stream_error(1, PROTOCOL_ERROR)

    def test_8_1_2_3_5_two_methods(self):
        """http2/8.1.2.3/5"""
        self.malformed(self.doubled(":method")).expect_stream_error(1, PROTOCOL_ERROR)

    def test_8_1_2_3_6_two_schemes(self):
        """http2/8.1.2.3/6"""
        self.malformed(self.doubled(":scheme")).expect_stream_error(1, PROTOCOL_ERROR)

    def test_8_1_2_3_7_two_paths(self):
        """http2/8.1.2.3/7"""
        self.malformed(self.doubled(":path")).expect_stream_error(1, PROTOCOL_ERROR)

    def test_8_1_2_6_1_content_length_other_than_the_data(self):
        """http2/8.1.2.6/1: content-length 1, 4 octets of DATA."""
        c = self.connect()
        self.post_open(c, extra=[("content-length", "1")])
        c.send(h2.data(1, b"test"))
        c.expect_stream_error(1, PROTOCOL_ERROR)

    def test_8_1_2_6_2_content_length_other_than_the_sum_of_data(self):
        """http2/8.1.2.6/2: content-length 1, two DATA frames of 4 octets."""
        c = self.connect()
        self.post_open(c, extra=[("content-length", "1")])
        c.send(h2.data(1, b"test", end_stream=False))
        c.send(h2.data(1, b"test"))
        c.expect_stream_error(1, PROTOCOL_ERROR)


class ServerPush(H2Case):
    """RFC 9113 section 8.2 (8.4 in RFC 9113): a client cannot push."""

    def test_8_2_1_push_promise(self):
        """http2/8.2/1"""
        c = self.connect()
        c.send(frame(PUSH_PROMISE, END_HEADERS, 1, struct.pack(">I", 3) + c.block(c.request_fields())))
        c.expect_connection_error(PROTOCOL_ERROR)


class Hpack(H2Case):
    """RFC 7541: a header block that cannot be decoded is a connection error of type
    COMPRESSION_ERROR (RFC 9113 section 4.3)."""

    def undecodable(self, before=b"", after=b""):
        c = self.connect()
        c.headers(1, before + c.block(c.request_fields()) + after)
        c.expect_connection_error(COMPRESSION_ERROR)

    def test_2_3_3_1_indexed_field_past_the_tables(self):
        """hpack/2.3.3/1: index 70 with an empty dynamic table."""
        self.undecodable(after=b"\xc6")

    def test_2_3_3_2_literal_field_name_past_the_tables(self):
        """hpack/2.3.3/2"""
        self.undecodable(after=b"\x7f\x07\x00")

    def test_4_2_1_table_size_update_at_the_end_of_a_block(self):
        """hpack/4.2/1"""
        self.undecodable(after=b"\x21")

    def test_5_2_1_huffman_padding_over_7_bits(self):
        """hpack/5.2/1"""
        self.undecodable(after=b"\x00\x85\xf2\xb2\x4a\x84\xff\x84\x49\x50\x9f\xff")

    def test_5_2_2_huffman_padding_of_zeros(self):
        """hpack/5.2/2"""
        self.undecodable(after=b"\x00\x85\xf2\xb2\x4a\x84\xff\x83\x49\x50\x90")

    def test_5_2_3_huffman_eos_symbol(self):
        """hpack/5.2/3"""
        self.undecodable(after=b"\x00\x85\xf2\xb2\x4a\x84\xff\x87\x49\x51\xff\xff\xff\xfa\x7f")

    def test_6_1_1_index_0(self):
        """hpack/6.1/1"""
        self.undecodable(after=b"\x80")

    def test_6_3_1_table_size_update_past_the_setting(self):
        """hpack/6.3/1: a table size one past SETTINGS_HEADER_TABLE_SIZE (4096 unless usher said)."""
        c = self.connect()
        update = bytearray(encode_integer(c.server_settings.get(HEADER_TABLE_SIZE, 4096) + 1, 5))
        update[0] |= 0x20
        c.headers(1, bytes(update) + c.block(c.request_fields()))
        c.expect_connection_error(COMPRESSION_ERROR)
