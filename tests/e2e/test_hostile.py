"""The hostile-input catalog: what a client can throw at the server, and what it gets back.

Each item gets the right reply or a clean close and a transcript line; the server never crashes, never
holds unbounded memory and never lets one client slow the others down. The conftest teardown checks every
server exits 0 with no sanitizer report.

| item | test |
|---|---|
| over-long lines and commands | test_protocol: test_two_megabyte_line_without_crlf, test_command_line_length_limit; here: test_overlong_paths_and_auth_lines |
| NUL and 8-bit bytes in commands | test_protocol: test_nul_in_command; here: test_eight_bit_bytes_in_commands |
| a DATA body that never ends | test_data_body_that_never_ends |
| 10,000 pipelined commands in one write | test_ten_thousand_pipelined_commands_in_one_write |
| invalid UTF-8 with SMTPUTF8 | test_invalid_utf8_with_smtputf8 |
| bad base64 in AUTH | test_bad_base64_in_auth |
| TLS garbage | test_tls_garbage (and test_tls.py for ClientHellos on the wrong port) |
| half-open connections | test_half_open_connections |
| a client that never reads replies | test_protocol: test_client_that_does_not_read_its_replies; here: test_output_is_bounded_for_a_client_that_never_reads |
| a client that vanishes mid-DATA | test_protocol: test_client_disconnects_mid_data |
| 1000 connections opened and abandoned | test_protocol: test_thousand_abandoned_connections_do_not_block_others |
| admin socket abuse | test_admin.py (garbage, invalid JSON, over-long lines, a subscriber that never reads) |
"""

import base64
import random
import socket
import ssl
import threading
import time

from conftest import make_message, transaction


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def normal_transaction_works(server, label):
    """Another client gets through, quickly, whatever the hostile one is doing."""
    started = time.monotonic()
    with server.connect(timeout=10) as c:
        c.greet()
        transaction(c, "a@example.org", ["b@example.org"], make_message(label, "still served"))
        c.cmd("QUIT", 221)
    return time.monotonic() - started


def test_overlong_paths_and_auth_lines(server):
    with server.connect() as c:
        c.greet()
        # RFC 5321 4.5.3.1: local part 64, domain 255, path 256 octets.
        c.cmd("MAIL FROM:<" + "a" * 65 + "@example.org>", 501, "5.1.7 Bad sender address")
        c.cmd("MAIL FROM:<a@" + "b" * 250 + ".org>", 501, "5.1.7 Bad sender address")
        c.cmd("MAIL FROM:<a@example.org>", 250)
        c.cmd("RCPT TO:<" + "r" * 65 + "@example.org>", 501, "5.1.3 Bad recipient address")
        c.cmd("RSET", 250)
        # AUTH lines may be 12288 octets (RFC 4954 section 4); a longer one is refused and skipped.
        c.cmd("AUTH PLAIN " + "A" * 13000, 500, "line too long")
        c.cmd("NOOP", 250)
    assert normal_transaction_works(server, "after long lines") < 5


def test_eight_bit_bytes_in_commands(server):
    with server.connect() as c:
        c.greet()
        c.cmd(b"\xc3\xa9HLO x", 500, "command not recognized")
        c.cmd(b"MAIL FROM:<\xff\xfe@example.org>", 501, "Bad sender address")
        c.cmd(b"MAIL FROM:<a@example.org> \x80=1", 501)
        c.cmd(b"NOOP \xff\xff\xff", 250)  # NOOP ignores its argument (RFC 5321 4.1.1.9)
        c.cmd("QUIT", 221)
    server.wait_for_log(r"#1 close client quit")
    # The transcript shows the bytes escaped, never raw.
    assert b"\xff" not in server.log_bytes()
    assert "\\xff\\xfe" in server.log()


def test_data_body_that_never_ends(server_factory):
    """A body past the size limit is read and dropped, not kept; a body that stops coming is ended by the
    idle timeout with 421, and nothing is stored."""
    srv = server_factory("--max-message-size", "1M", "--idle-timeout", "2", "-q")
    before = rss_kib(srv.pid)
    with srv.connect(timeout=30) as c:
        c.greet()
        c.cmd("MAIL FROM:<a@example.org>", 250)
        c.cmd("RCPT TO:<b@example.org>", 250)
        c.cmd("DATA", 354)
        chunk = b"x" * 999 + b"\r\n"
        for _ in range(20 * 1024):  # 20 MiB of body, never terminated
            c.send(chunk)
        grown = rss_kib(srv.pid) - before
        started = time.monotonic()
        r = c.expect(421)
        waited = time.monotonic() - started
        assert "4.4.2" in r.text and "timeout" in r.text
        assert waited < 10
        assert c.read_until_closed() == b""
    # 20 MiB went through; the server kept at most the 1 MiB the limit allows (plus allocator slack).
    assert grown < 8 * 1024, f"RSS grew by {grown} KiB for a body over the size limit"
    assert srv.message_ids() == []
    assert normal_transaction_works(srv, "after the endless body") < 5


def test_ten_thousand_pipelined_commands_in_one_write(server_factory):
    srv = server_factory("-q")
    n = 10_000
    with srv.connect(timeout=60) as c:
        c.greet()
        got = {}

        def reader():
            got["data"] = c.read_until_closed(timeout=60)

        t = threading.Thread(target=reader, daemon=True)
        t.start()
        c.send(b"".join(b"NOOP %d\r\n" % i for i in range(n)) + b"QUIT\r\n")
        t.join(timeout=60)
        assert not t.is_alive()
    lines = got["data"].split(b"\r\n")
    assert lines[:n] == [b"250 2.0.0 Ok"] * n
    assert lines[n] == b"221 2.0.0 localhost Bye"


def test_invalid_utf8_with_smtputf8(server):
    with server.connect() as c:
        c.greet()
        # overlong, surrogate, truncated and stray continuation bytes
        for bad in (b"\xc0\xaf", b"\xed\xa0\x80", b"\xe2\x82", b"\x80"):
            c.cmd(b"MAIL FROM:<a" + bad + b"@example.org> SMTPUTF8", 501, "Bad sender address")
        c.cmd("MAIL FROM:<a@example.org> SMTPUTF8", 250)
        c.cmd(b"RCPT TO:<\xf4\x90\x80\x80@example.org>", 501, "Bad recipient address")  # above U+10FFFF
        c.cmd("RCPT TO:<j\u00f6rg@example.org>".encode(), 250)
        c.cmd("QUIT", 221)


def test_bad_base64_in_auth(server):
    with server.connect() as c:
        c.greet()
        c.cmd("AUTH PLAIN !!!!", 501, "5.5.2 Error: cannot decode the response (not base64)")
        c.cmd("AUTH PLAIN QUJD", 501, "malformed PLAIN response")  # base64, but no NULs
        c.cmd("AUTH LOGIN", 334)
        c.cmd("a===", 501, "not base64")
        c.cmd("AUTH LOGIN", 334)
        c.cmd("*", 501, "authentication cancelled")
        c.cmd("AUTH PLAIN " + base64.b64encode(b"\0u\0p").decode(), 235)
        c.cmd("QUIT", 221)


def garbage(size, seed):
    """Random bytes that cannot be read as the start of a TLS record. One random buffer in about 300
    starts with a record type (0x14-0x17) and a length past its own end: wolfSSL then waits for the rest
    of that record, bounded by --idle-timeout (test_tls.py checks that bound), which is not this test."""
    data = bytearray(random.Random(seed).randbytes(size))
    data[0] = 0x00
    return bytes(data)


def test_tls_garbage(server):
    """Random bytes instead of a ClientHello on the implicit-TLS port, and after STARTTLS."""
    smtps = server.listener("smtps")
    for payload in (garbage(4096, 1), b"\x16\x03\x01\xff\xff" + garbage(100, 2), b"GET / HTTP/1.1\r\n\r\n"):
        with socket.create_connection((smtps["host"], smtps["port"]), timeout=10) as s:
            s.sendall(payload)
            s.settimeout(10)
            try:
                while s.recv(4096):
                    pass
            except (ConnectionResetError, socket.timeout):
                pass
    with server.connect() as c:
        c.greet()
        c.cmd("STARTTLS", 220)
        c.send(garbage(2048, 3))
        assert c.read_until_closed(timeout=10) is not None
    server.wait_for_log(r"tls handshake failed", count=4)
    assert normal_transaction_works(server, "after TLS garbage") < 5
    # TLS still works for a real client afterwards.
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection((smtps["host"], smtps["port"]), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            assert s.recv(100).startswith(b"220 ")


def test_half_open_connections(server):
    """A client that shuts its side down: commands already sent are answered, then the server closes."""
    with socket.create_connection(server.address, timeout=10) as s:
        s.recv(100)  # the greeting
        s.sendall(b"EHLO half.example\r\nNOOP\r\n")
        s.shutdown(socket.SHUT_WR)
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        assert data.endswith(b"250 2.0.0 Ok\r\n"), data
    # One that connects and half-closes before the greeting: closed cleanly, nothing else happens.
    for _ in range(20):
        with socket.create_connection(server.address, timeout=10) as s:
            s.shutdown(socket.SHUT_WR)
            s.settimeout(10)
            while s.recv(4096):
                pass
    server.wait_for_log(r"close client closed the connection", count=21)
    assert normal_transaction_works(server, "after half-open connections") < 5


def test_output_is_bounded_for_a_client_that_never_reads(server_factory):
    """A client that writes forever and never reads: the server stops reading it once its replies back up,
    so its memory stays bounded, and other clients are served meanwhile."""
    srv = server_factory("-q")
    before = rss_kib(srv.pid)
    s = socket.create_connection(srv.address, timeout=10)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.setblocking(False)
    sent = 0
    deadline = time.monotonic() + 5
    burst = b"HELP\r\n" * 1000  # each HELP gets a 3-line reply, so replies outgrow requests
    while time.monotonic() < deadline:
        try:
            sent += s.send(burst)
        except BlockingIOError:
            time.sleep(0.01)
    grown = rss_kib(srv.pid) - before
    try:
        assert sent > 0
        assert grown < 16 * 1024, f"RSS grew by {grown} KiB for a client that never reads"
        assert normal_transaction_works(srv, "beside a client that never reads") < 5
    finally:
        s.close()
