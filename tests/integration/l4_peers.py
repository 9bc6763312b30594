"""Peers for the layer-4 suites, run in threads of the test process: TCP servers that say their
name and echo, read a PROXY header and report it, or speak TLS with a certificate of their own.
Each is closed by the test that started it (addCleanup)."""
import ipaddress
import os
import socket
import ssl
import struct
import subprocess
import tempfile
import threading

V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"


class TcpServer:
    """A listening socket on 127.0.0.1 whose connections each get a thread running
    `handle(conn)`. close() stops accepting and closes the connections still open."""

    def __init__(self, handle, port=0):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(512)
        self.port = self.sock.getsockname()[1]
        self.handle = handle
        self.connections = []
        self.lock = threading.Lock()
        self.accepted = 0
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                if self.closed:
                    conn.close()
                    return
                self.accepted += 1
                self.connections.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        try:
            conn.settimeout(120)  # a loaded machine may stall a 256 MiB echo for long
            self.handle(conn)
        except OSError:
            pass
        finally:
            conn.close()

    def close(self):
        with self.lock:
            self.closed = True
            connections = list(self.connections)
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def echo_with_name(name):
    """Says `name\\n` first, then echoes every byte until the client half-closes, then closes."""
    def handle(conn):
        conn.sendall(name.encode() + b"\n")
        buffer = bytearray(1 << 20)
        while True:
            n = conn.recv_into(buffer)
            if n == 0:
                return
            conn.sendall(memoryview(buffer)[:n])
    return handle


def collect_then_answer(conn):
    """Reads until the client half-closes, then answers with the byte count and closes: a
    backend that sees EOF only if the half-close was passed on."""
    total = 0
    while True:
        chunk = conn.recv(65536)
        if not chunk:
            break
        total += len(chunk)
    conn.sendall(b"got %d\n" % total)


def read_exactly(conn, n):
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise EOFError("closed after %d of %d bytes" % (len(data), n))
        data += chunk
    return data


def authority_tlv(tlvs):
    """The value of a v2 header's authority TLV (type 0x02), or None."""
    while len(tlvs) >= 3:
        kind, length = tlvs[0], struct.unpack("!H", tlvs[1:3])[0]
        if kind == 0x02:
            return tlvs[3:3 + length].decode()
        tlvs = tlvs[3 + length:]
    return None


def parse_proxy_header(conn):
    """Reads a PROXY v1 or v2 header (IPv4/IPv6 or LOCAL) and returns (version, source, port,
    authority TLV or None)."""
    first = read_exactly(conn, 12)
    if first == V2_SIGNATURE:
        version_command, family, length = struct.unpack("!BBH", read_exactly(conn, 4))
        block = read_exactly(conn, length)
        if version_command != 0x21:
            return 2, None, None, None
        if family >> 4 == 1:
            return (2, str(ipaddress.IPv4Address(block[0:4])), struct.unpack("!H", block[8:10])[0],
                    authority_tlv(block[12:]))
        return (2, str(ipaddress.IPv6Address(block[0:16])), struct.unpack("!H", block[32:34])[0],
                authority_tlv(block[36:]))
    line = first
    while not line.endswith(b"\r\n"):
        line += read_exactly(conn, 1)
    fields = line.decode().split()
    if fields[1] == "UNKNOWN":
        return 1, None, None, None
    return 1, fields[2], int(fields[4]), None


def proxy_reporter(conn):
    """Parses the PROXY header usher sends and answers with what it says, then echoes."""
    version, source, port, authority = parse_proxy_header(conn)
    conn.sendall(f"v{version} {source} {port}".encode() + (f" {authority}" if authority else "").encode() + b"\n")
    while True:
        chunk = conn.recv(65536)
        if not chunk:
            return
        conn.sendall(chunk)


def make_certificate(folder, name):
    """A self-signed certificate for DNS name `name`: (cert, key) paths in `folder`."""
    cert, key = os.path.join(folder, name + ".pem"), os.path.join(folder, name + ".key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=" + name,
                    "-addext", "subjectAltName=DNS:" + name], check=True, capture_output=True)
    return cert, key


def tls_server(name):
    """(TcpServer, cert path): a TLS server with its own certificate for `name` that answers
    `name\\n` once the handshake is done."""
    folder = tempfile.mkdtemp(prefix="usher-test-sni-")
    cert, key = make_certificate(folder, name)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)

    def handle(conn):
        with context.wrap_socket(conn, server_side=True) as tls:
            tls.sendall(name.encode() + b"\n")
            tls.recv(1)
    return TcpServer(handle), cert, folder
