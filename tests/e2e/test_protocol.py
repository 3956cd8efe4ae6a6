"""The wire protocol through raw sockets: pipelining, framing, limits, errors and abusive clients."""

import re
import smtplib
import socket
import threading
import time

import pytest

from conftest import dot_stuff, make_message, poll, queued_id, raise_fd_limit, transaction

# -- pipelining -----------------------------------------------------------------------------------------------


def test_pipelined_group_answered_in_order(server):
    body1 = make_message("pipelined one", "first\r\n.dot line\r\n")
    body2 = make_message("pipelined two", "second\r\n")
    group = (b"EHLO pipeliner.example\r\n"
             b"MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nRCPT TO:<c@example.org>\r\nDATA\r\n"
             + dot_stuff(body1) + b".\r\n"
             b"MAIL FROM:<d@example.org>\r\nRCPT TO:<e@example.org>\r\nDATA\r\n"
             + dot_stuff(body2) + b".\r\n"
             b"NOOP\r\nQUIT\r\n")
    with server.connect() as c:
        c.expect(220)
        c.send(group)  # the whole group in one write
        ehlo = c.expect(250)
        assert "PIPELINING" in ehlo.lines
        codes = [r.code for r in c.replies(11)]
        assert codes == [250, 250, 250, 354, 250, 250, 250, 354, 250, 250, 221], codes
        assert c.read_until_closed() == b""
    m1, m2 = server.wait_for_messages(2)
    assert (m1.sender, m1.recipients, m1.raw) == ("a@example.org", ["b@example.org", "c@example.org"], body1)
    assert (m2.sender, m2.recipients, m2.raw) == ("d@example.org", ["e@example.org"], body2)


def test_ten_transactions_in_one_write(server):
    """Ten transactions with 20 KB bodies in one write: the server pauses input during each commit."""
    n = 10
    bodies = [make_message(f"batch {i}", (f"{i:02d}" * 39 + "\r\n") * 256) for i in range(n)]
    stream = b"EHLO batch.example\r\n"
    for i, body in enumerate(bodies):
        stream += (b"MAIL FROM:<s%d@example.org>\r\nRCPT TO:<r%d@example.org>\r\nDATA\r\n" % (i, i)
                   + dot_stuff(body) + b".\r\n")
    stream += b"QUIT\r\n"
    assert len(stream) > 200_000
    with server.connect() as c:
        c.expect(220)
        c.send(stream)
        c.expect(250)
        ids = []
        for i in range(n):
            assert [r.code for r in c.replies(3)] == [250, 250, 354]
            ids.append(queued_id(c.expect(250).text))
        c.expect(221)
    messages = server.wait_for_messages(n)
    assert [m.id for m in messages] == ids
    for i, m in enumerate(messages):
        assert m.sender == f"s{i}@example.org" and m.recipients == [f"r{i}@example.org"]
        assert m.raw == bodies[i]


def test_ten_sessions_at_once(server):
    """Ten connections, each sending its whole session in one write before reading anything."""
    clients = [server.connect() for _ in range(10)]
    try:
        for i, c in enumerate(clients):
            c.send(b"EHLO s%d.example\r\nMAIL FROM:<s%d@example.org>\r\nRCPT TO:<r@example.org>\r\nDATA\r\n" % (i, i)
                   + make_message(f"session {i}", f"session {i}") + b".\r\nQUIT\r\n")
        for i, c in enumerate(clients):
            codes = [r.code for r in c.replies(7)]
            assert codes == [220, 250, 250, 250, 354, 250, 221], f"session {i}: {codes}"
    finally:
        for c in clients:
            c.close()
    messages = server.wait_for_messages(10)
    assert sorted(m.sender for m in messages) == sorted(f"s{i}@example.org" for i in range(10))
    assert len({m["session"] for m in messages}) == 10


def test_byte_at_a_time(server):
    """Every byte in its own write: commands and the end of data are reassembled across reads."""
    body = make_message("trickle", "a\r\n.b\r\n.\r\nc\r\n")
    stream = (b"EHLO trickle.example\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n"
              + dot_stuff(body) + b".\r\n")
    with server.connect() as c:
        c.expect(220)
        for i in range(len(stream)):
            c.send(stream[i:i + 1])
        assert [r.code for r in c.replies(4)] == [250, 250, 250, 354]
        msg_id = queued_id(c.expect(250).text)
    (m,) = server.wait_for_messages(1)
    assert m.id == msg_id and m.raw == body


# -- BDAT -------------------------------------------------------------------------------------------------------


def test_bdat_chunks_split_across_writes(server):
    chunk = b"Subject: split\r\n\r\n" + bytes(range(256)) * 40 + b"\r\n.\r\n"
    with server.connect() as c:
        c.greet()
        c.cmd("MAIL FROM:<a@example.org>", 250)
        c.cmd("RCPT TO:<b@example.org>", 250)
        # The command itself split, then the chunk in uneven pieces. The pauses only make separate reads
        # likely; the result must be the same either way.
        pieces = [b"BD", b"AT %d" % len(chunk), b"\r\n" + chunk[:1], chunk[1:700], chunk[700:701], chunk[701:]]
        for p in pieces:
            c.send(p)
            time.sleep(0.02)
        c.expect(250, f"{len(chunk)} octets received")
        second = b"tail\r\n"
        c.send(b"BDAT %d LAST\r\n" % len(second))
        time.sleep(0.02)
        c.send(second)
        msg_id = queued_id(c.expect(250).text)
    (m,) = server.wait_for_messages(1)
    assert m.id == msg_id
    assert m.raw == chunk + second


def test_bdat_zero_last_ends_message(server):
    with server.connect() as c:
        c.greet()
        c.cmd("MAIL FROM:<a@example.org>", 250)
        c.cmd("RCPT TO:<b@example.org>", 250)
        c.send(b"BDAT 6\r\nHello\nBDAT 7\r\nWorld\r\n")
        c.expect(250, "6 octets received")
        c.expect(250, "7 octets received")
        c.cmd("BDAT 0 LAST", 250, "queued as")
        # DATA is not allowed once BDAT was used, and RCPT neither.
        c.cmd("MAIL FROM:<a@example.org>", 250)
        c.cmd("RCPT TO:<b@example.org>", 250)
        c.send(b"BDAT 1\r\nx")
        c.expect(250, "1 octets received")
        c.cmd("DATA", 503, "DATA not allowed after BDAT")
        c.cmd("RCPT TO:<c@example.org>", 503, "RCPT not allowed after BDAT")
        c.cmd("RSET", 250)
        # An empty message sent as one BDAT 0 LAST.
        c.cmd("MAIL FROM:<empty@example.org>", 250)
        c.cmd("RCPT TO:<b@example.org>", 250)
        c.cmd("BDAT 0 LAST", 250, "queued as")
    first, empty = server.wait_for_messages(2)
    assert first.raw == b"Hello\nWorld\r\n"
    assert empty.sender == "empty@example.org" and empty.raw == b"" and empty["size"] == 0


def test_rejected_bdat_chunk_is_read_not_executed(server):
    """RFC 3030: a refused chunk is still read in full, so its bytes are never taken for commands."""
    evil = b"QUIT\r\nQUIT\r\n"
    with server.connect() as c:
        c.greet()
        c.send(b"BDAT %d\r\n" % len(evil) + evil)
        c.expect(503, "need MAIL command")
        c.cmd("NOOP", 250)  # still connected: the QUITs were chunk data
        c.cmd("MAIL FROM:<a@example.org>", 250)
        c.send(b"BDAT %d LAST\r\n" % len(evil) + evil)
        c.expect(554, "no valid recipients")
        c.cmd("NOOP", 250)
        c.cmd("BDAT", 501, "BDAT chunk-size [LAST]")
        c.cmd("BDAT 5 FIRST", 501)
    assert server.message_ids() == []


def test_bdat_over_size_limit(server_factory):
    srv = server_factory("--max-message-size", "1024")
    with srv.connect() as c:
        c.greet()
        c.cmd("MAIL FROM:<a@example.org>", 250)
        c.cmd("RCPT TO:<b@example.org>", 250)
        c.send(b"BDAT 2000 LAST\r\n" + b"x" * 2000)
        c.expect(552, "5.3.4")
        # The transaction is gone; the session is fine.
        c.cmd("RCPT TO:<b@example.org>", 503, "need MAIL command")
        c.cmd("MAIL FROM:<a@example.org>", 250)
        c.cmd("RCPT TO:<b@example.org>", 250)
        c.send(b"BDAT 600\r\n" + b"y" * 600)
        c.expect(250, "600 octets received")
        c.send(b"BDAT 600 LAST\r\n" + b"y" * 600)  # 1200 in all: over the limit
        c.expect(552, "5.3.4")
        c.cmd("MAIL FROM:<a@example.org>", 250)
        c.cmd("RCPT TO:<b@example.org>", 250)
        c.send(b"BDAT 1024 LAST\r\n" + b"z" * 1024)  # exactly the limit
        c.expect(250, "queued as")
    (m,) = srv.wait_for_messages(1)
    assert m.raw == b"z" * 1024


def test_data_size_limit_boundary(server_factory):
    srv = server_factory("--max-message-size", "1024")
    head = b"Subject: exact\r\n\r\n" + (b"e" * 98 + b"\r\n") * 9 + b".dot"  # the stuffed dot must not count
    exact = head + b"e" * (1024 - len(head) - 2) + b"\r\n"
    assert len(exact) == 1024
    with srv.connect() as c:
        c.greet()
        msg_id = transaction(c, "a@example.org", ["b@example.org"], exact)
        c.cmd("MAIL FROM:<a@example.org> SIZE=1024", 250)
        c.cmd("RSET", 250)
        c.cmd("MAIL FROM:<a@example.org> SIZE=1025", 552, "5.3.4")
        # One octet over, undeclared: refused after the data, with the stuffing not counted.
        c.cmd("MAIL FROM:<a@example.org>", 250)
        c.cmd("RCPT TO:<b@example.org>", 250)
        c.cmd("DATA", 354)
        c.send(dot_stuff(exact[:-2] + b"x\r\n") + b".\r\n")
        c.expect(552, "5.3.4 Error: message size exceeds fixed maximum message size (1024 octets)")
        c.cmd("NOOP", 250)
    (m,) = srv.wait_for_messages(1)
    assert m.id == msg_id and m.raw == exact


def test_input_after_quit_is_ignored(server):
    with server.connect() as c:
        c.expect(220)
        c.send(b"EHLO q.example\r\nQUIT\r\nNOOP\r\nMAIL FROM:<a@example.org>\r\n")
        c.expect(250)
        c.expect(221)
        assert c.read_until_closed() == b"", "replies after 221"
    server.wait_for_log(r"#1 close client quit")
    assert ("command", "NOOP") not in server.session_events(1)


def test_client_that_does_not_read_its_replies(server_factory):
    """200k pipelined NOOPs from a client with a small receive window that reads nothing until it has
    written everything: the server must stop reading while its replies back up, then catch up."""
    srv = server_factory("-q")  # no transcript: 400k log lines would only slow this down
    n = 200_000
    with srv.connect(timeout=60, rcvbuf=16384) as c:
        c.greet()
        sent = {}

        def writer():
            try:
                c.send(b"NOOP\r\n" * n + b"QUIT\r\n")
                sent["ok"] = True
            except OSError as e:
                sent["error"] = repr(e)

        t = threading.Thread(target=writer, daemon=True)
        t.start()
        t.join(timeout=2)  # bounded: the writer may well be blocked by now, which is the point
        data = c.read_until_closed(timeout=60)
        t.join(timeout=30)
        assert not t.is_alive(), "the writer is still blocked after the server closed"
        assert sent.get("ok"), sent
    lines = data.split(b"\r\n")
    assert lines[-1] == b""
    assert lines[:-2] == [b"250 2.0.0 Ok"] * n, "missing or reordered NOOP replies"
    assert lines[-2] == b"221 2.0.0 localhost Bye"


# -- framing and limits ------------------------------------------------------------------------------------------


def test_two_megabyte_line_without_crlf(server):
    with server.connect(timeout=60) as c:
        c.greet()
        c.send(b"NOOP " + b"A" * (2 * 1024 * 1024))
        r = c.expect(500)
        assert r.text.startswith("5.5.2 Error: line too long"), r
        # The rest of the line is skipped up to its LF: one error, and the session works afterwards.
        c.send(b"B" * 1000 + b"\r\nNOOP\r\n")
        c.expect(250)
        msg_id = transaction(c, "a@example.org", ["b@example.org"], make_message("after long line", "still fine"))
        c.cmd("QUIT", 221)
    (m,) = server.wait_for_messages(1)
    assert m.id == msg_id
    # The transcript shows the start of the line, not two megabytes of it.
    assert max(len(l) for l in server.log_lines()) < 2000


def test_command_line_length_limit(server):
    with server.connect() as c:
        c.greet()
        # 512 octets with CRLF is the limit (RFC 5321 4.5.3.1.4); one more is refused.
        c.cmd("NOOP " + "x" * (512 - 2 - 5), 250)
        r = c.cmd("NOOP " + "x" * (513 - 2 - 5), 500)
        assert r.text == "5.5.2 Error: line too long (limit 512 octets, RFC 5321 4.5.3.1.4)"
        c.cmd("MAIL FROM:<" + "a" * 600 + "@example.org>", 500, "line too long")
        c.cmd("HELP " + "y" * 5000, 500, "line too long")
        c.cmd("NOOP", 250)


def test_nul_in_command(server):
    with server.connect() as c:
        c.greet()
        c.cmd(b"NOOP\x00", 500, "5.5.2 Error: NUL character in command")
        c.cmd(b"MAIL FROM:<a\x00@example.org>", 500, "NUL character")
        c.cmd(b"\x00\x00\x00", 500, "NUL character")
        c.cmd("MAIL FROM:<a@example.org>", 250)
    assert "\x00" not in server.log()


def test_bare_lf_command_lines(server):
    with server.connect() as c:
        c.expect(220)
        c.send(b"EHLO lf.example\nNOOP\n")
        c.expect(250)
        c.expect(250)


def test_too_many_errors_closes(server_factory):
    srv = server_factory("--max-errors", "3")
    with srv.connect() as c:
        c.greet()
        c.cmd("FOO", 500, "5.5.2 Error: command not recognized")
        c.cmd("MAIL FROM:<a@example.org> BOGUS=1", 555, "5.5.4 Error: unsupported parameter BOGUS")
        c.cmd("NOOP", 250)  # good commands do not reset the count
        c.cmd("BAR", 500, "command not recognized")
        r = c.expect(421)
        assert r.text == "4.7.0 localhost Error: too many errors, closing connection"
        assert c.read_until_closed() == b""
    srv.wait_for_log(r"#1 close too many errors \(in \d+ bytes, out \d+ bytes, \d+ ms\)")
    # Only that session ended.
    with srv.connect() as c:
        c.greet()
        c.cmd("QUIT", 221)


def test_idle_timeout(server_factory):
    srv = server_factory("--idle-timeout", "1")
    with srv.connect(timeout=15) as c:
        c.greet()
        started = time.monotonic()
        r = c.expect(421)
        elapsed = time.monotonic() - started
        assert r.text == "4.4.2 localhost Error: timeout exceeded, closing connection"
        assert 0.8 <= elapsed <= 10, f"timeout after {elapsed:.2f}s, configured 1s"
        assert c.read_until_closed() == b""
    srv.wait_for_log(r"#1 close idle timeout")
    # Activity resets the timer: a session that keeps talking is not cut off.
    with srv.connect(timeout=15) as c:
        c.greet()
        for _ in range(6):
            time.sleep(0.3)
            c.cmd("NOOP", 250)
        c.cmd("QUIT", 221)


def test_client_disconnects_mid_data(server):
    with server.connect() as c:
        c.greet()
        c.cmd("MAIL FROM:<a@example.org>", 250)
        c.cmd("RCPT TO:<b@example.org>", 250)
        c.cmd("DATA", 354)
        c.send(b"Subject: cut\r\n\r\nhalf a message")
    server.wait_for_log(r"#1 close client closed the connection mid-transaction")
    with server.connect() as c:
        c.greet()
        c.cmd("MAIL FROM:<a@example.org>", 250)
        c.cmd("RCPT TO:<b@example.org>", 250)
        c.cmd("DATA", 354)
        c.send(b"Subject: reset\r\n\r\nhalf a message")
        c.reset()  # RST instead of FIN
    # Usually "client reset the connection"; when the RST lands before the server has read the data, libuv
    # reports the hang-up as end of file after that data, which is logged as a close mid-transaction.
    server.wait_for_log(r"#2 close client (reset the connection|closed the connection mid-transaction)")
    with server.connect() as c:
        c.greet()
        msg_id = transaction(c, "next@example.org", ["b@example.org"], make_message("next", "whole"))
        c.cmd("QUIT", 221)
    (m,) = server.wait_for_messages(1)
    assert m.id == msg_id and m.sender == "next@example.org"
    assert not list(server.store_dir.glob(".*.tmp")), "temporary files left in the store"


def test_client_vanishes_while_message_is_committed(server):
    """The end of data and an RST in one go: the commit (an fsync on the thread pool) outlives the client."""
    n = 20
    for i in range(n):
        c = server.connect()
        c.send(b"EHLO gone.example\r\nMAIL FROM:<gone%d@example.org>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n"
               b"Subject: gone\r\n\r\nbody\r\n.\r\n" % i)
        c.reset() if i % 2 else c.close()
    server.wait_for_log(r"#\d+ close ", count=n, timeout=30)
    with server.connect() as c:
        c.greet()
        msg_id = transaction(c, "after@example.org", ["b@example.org"], make_message("after the vanished", "x"))
        c.cmd("QUIT", 221)
    # Whatever was committed is complete on disk; nothing half-written is left behind (a vanished client's
    # write may still be in flight a moment longer, hence the poll).
    poll(lambda: not list(server.store_dir.glob(".*.tmp")), 10, message="temporary files to disappear")
    messages = server.messages()
    assert msg_id in [m.id for m in messages]
    for m in messages:
        if m.sender != "after@example.org":
            assert m.raw == b"Subject: gone\r\n\r\nbody\r\n"


def test_client_disconnects_before_greeting_read(server):
    for i in range(5):
        c = server.connect()
        c.close() if i % 2 else c.reset()
    server.wait_for_log(r"#\d+ close ", count=5)
    with server.connect() as c:
        c.greet()
        c.cmd("QUIT", 221)


def test_thousand_abandoned_connections_do_not_block_others(server):
    total, batch = 1000, 100
    limit = raise_fd_limit(4096)
    if limit < total + 200:
        pytest.skip(f"RLIMIT_NOFILE is {limit}: cannot hold {total} connections")
    abandoned = []
    result = {}
    try:
        for start in range(0, total, batch):
            for _ in range(batch):
                s = socket.create_connection(server.address, timeout=20)
                abandoned.append(s)
            # Bounded wait for this batch to be accepted before opening the next (backlog is 511).
            server.wait_for_log(r"#\d+ connect ", count=start + batch, timeout=30)

        # With a thousand idle sessions open, a real client sends promptly.
        def send():
            t0 = time.monotonic()
            with smtplib.SMTP(server.host, server.port, timeout=10) as client:
                client.ehlo("busy.example")
                result["refused"] = client.sendmail("a@example.org", ["b@example.org"],
                                                    make_message("while busy", "hello"))
            result["elapsed"] = time.monotonic() - t0

        t = threading.Thread(target=send, daemon=True)
        t.start()
        t.join(timeout=15)
        assert not t.is_alive(), "smtplib client stuck while 1000 connections are open"
        assert result.get("refused") == {}, result
        assert result["elapsed"] < 10, f"send took {result['elapsed']:.1f}s"
    finally:
        for i, s in enumerate(abandoned):
            if i % 2:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            s.close()
    # Every abandoned session is closed by the server (FIN or RST), then a new client is served.
    server.wait_for_log(r"#\d+ close client (closed|reset) the connection", count=total, timeout=60)
    with server.connect() as c:
        c.greet()
        c.cmd("QUIT", 221)
    (m,) = server.wait_for_messages(1)
    assert b"Subject: while busy" in m.raw


# -- commands -----------------------------------------------------------------------------------------------------


def test_help_vrfy_noop_rset_expn(server):
    with server.connect() as c:
        c.expect(220)
        r = c.cmd("HELP", 214)
        assert r.lines == ["2.0.0 smtpfault, a fake SMTP server for fault injection",
                           "2.0.0 Commands: EHLO HELO STARTTLS AUTH MAIL RCPT DATA BDAT RSET NOOP VRFY HELP QUIT",
                           "2.0.0 End of HELP info"]
        c.cmd("HELP MAIL", 214)
        c.cmd("EHLO cmds.example", 250)
        c.cmd("VRFY postmaster", 252, "2.5.2 Cannot VRFY user, but will accept message and attempt delivery")
        c.cmd("VRFY", 501, "Syntax: VRFY address")
        c.cmd("EXPN list", 502, "5.5.1 Error: EXPN not available")
        c.cmd("NOOP", 250, "2.0.0 Ok")
        c.cmd("NOOP with a parameter", 250)
        c.cmd("noop", 250)  # verbs are case-insensitive
        c.cmd("MAIL FROM:<a@example.org>", 250)
        c.cmd("RCPT TO:<b@example.org>", 250)
        c.cmd("RSET", 250, "2.0.0 Ok")
        c.cmd("RCPT TO:<b@example.org>", 503, "need MAIL command")  # RSET dropped the transaction
        c.cmd("RSET now", 501, "Syntax: RSET")
        c.cmd("QUIT", 221, "2.0.0 localhost Bye")
        assert c.read_until_closed() == b""


def test_ehlo_and_helo_replies(server_factory):
    srv = server_factory("--hostname", "mx.test.example", "--max-message-size", "10M")
    with srv.connect() as c:
        assert c.reply().text == "mx.test.example ESMTP smtpfault"
        r = c.cmd("EHLO client.example", 250)
        assert r.lines == ["mx.test.example", "PIPELINING", "SIZE 10485760", "STARTTLS",
                           "AUTH PLAIN LOGIN CRAM-MD5 XOAUTH2", "ENHANCEDSTATUSCODES", "8BITMIME", "DSN", "SMTPUTF8",
                           "CHUNKING", "BINARYMIME", "HELP"]
        r = c.cmd("HELO client.example", 250)
        assert r.lines == ["mx.test.example"]
        c.cmd("MAIL FROM:<a@example.org> SIZE=10", 555, "parameters need EHLO")
        c.cmd("EHLO", 501, "Syntax: EHLO hostname")
        c.cmd("HELO", 501, "Syntax: HELO hostname")
        c.cmd("QUIT", 221, "mx.test.example Bye")


def test_sequence_errors(server):
    with server.connect() as c:
        c.expect(220)
        c.cmd("MAIL FROM:<a@example.org>", 503, "5.5.1 Error: send HELO/EHLO first")
        c.cmd("EHLO seq.example", 250)
        c.cmd("RCPT TO:<b@example.org>", 503, "5.5.1 Error: need MAIL command")
        c.cmd("DATA", 503, "5.5.1 Error: need MAIL command")
        c.cmd("MAIL FROM:<a@example.org>", 250)
        c.cmd("MAIL FROM:<a@example.org>", 503, "5.5.1 Error: nested MAIL command")
        c.cmd("DATA", 554, "5.5.1 Error: no valid recipients")
        c.cmd("DATA now", 501, "Syntax: DATA")
        c.cmd("RCPT TO:<b@example.org>", 250)
        c.cmd("EHLO again.example", 250)  # EHLO resets the transaction
        c.cmd("DATA", 503, "need MAIL command")


def test_parameters(server):
    with server.connect() as c:
        c.greet()
        c.cmd("MAIL FROM:<a@example.org> FOO=BAR", 555, "5.5.4 Error: unsupported parameter FOO")
        c.cmd("MAIL FROM:<a@example.org> SIZE=abc", 501, "SIZE needs a number")
        c.cmd("MAIL FROM:<a@example.org> SIZE=1 SIZE=2", 501, "duplicate parameter SIZE")
        c.cmd("MAIL FROM:<a@example.org> BODY=9BIT", 501, "BODY must be 7BIT, 8BITMIME or BINARYMIME")
        c.cmd("MAIL FROM:<a@example.org> SMTPUTF8=yes", 501, "SMTPUTF8 takes no value")
        c.cmd("MAIL FROM:<a@example.org> RET=ALL", 501, "RET must be FULL or HDRS")
        c.cmd("MAIL FROM:<a@example.org> SIZE=99999999999", 552, "5.3.4")
        c.cmd("MAIL FROM:a@example.org", 501, "5.1.7 Bad sender address")
        c.cmd("MAIL FROM:<a@example.org>junk", 501, "Syntax: MAIL FROM:<address> [parameters]")
        c.cmd("MAIL FROM:<a@example.org> SIZE=", 501, "malformed parameters")
        c.cmd("MAIL TO:<a@example.org>", 501, "Syntax: MAIL FROM:<address>")
        c.cmd("MAIL FROM:<a@example.org> SIZE=100 BODY=8BITMIME RET=HDRS ENVID=abc+2B AUTH=<>", 250)
        c.cmd("RCPT TO:<b@example.org> FOO", 555, "5.5.4 Error: unsupported parameter FOO")
        c.cmd("RCPT TO:<b@example.org> NOTIFY=SOMETIMES", 501, "NOTIFY must be")
        c.cmd("RCPT TO:<b@example.org> ORCPT=nosemicolon", 501, "ORCPT must be")
        c.cmd("RCPT TO:<b@>", 501, "5.1.3 Bad recipient address")
        c.cmd("RCPT TO:<b@example.org> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;b@example.org", 250)
        c.cmd("DATA", 354)
        c.send(b"Subject: params\r\n\r\nok\r\n.\r\n")
        c.expect(250, "queued as")
    (m,) = server.wait_for_messages(1)
    assert m["declared_size"] == 100 and m["body"] == "8BITMIME"


def test_data_line_over_1000_octets(server):
    with server.connect() as c:
        c.greet()
        c.cmd("MAIL FROM:<a@example.org>", 250)
        c.cmd("RCPT TO:<b@example.org>", 250)
        c.cmd("DATA", 354)
        c.send(b"Subject: long line\r\n\r\n" + b"L" * 1001 + b"\r\n.\r\n")
        r = c.expect(554)
        assert r.text == ("5.6.0 Error: message has a line of 1003 octets, over the limit of 1000 "
                          "(RFC 5321 4.5.3.1.6)")
        # 998 octets + CRLF is allowed.
        msg_id = transaction(c, "a@example.org", ["b@example.org"], b"Subject: ok\r\n\r\n" + b"L" * 998 + b"\r\n")
    (m,) = server.wait_for_messages(1)
    assert m.id == msg_id


def test_transcript_lines(server):
    with server.connect() as c:
        c.greet("transcript.example")
        local = c.local_address()
        c.cmd("NOOP", 250)
        c.cmd("QUIT", 221)
    server.wait_for_log(r"#1 close client quit")
    events = server.session_events(1)
    kinds = [e for e, _ in events]
    assert kinds[0] == "connect"
    assert events[0][1].startswith(f"{local} on smtp 127.0.0.1:{server.port}")
    assert ("command", "EHLO transcript.example") in events
    assert ("reply", "220 localhost ESMTP smtpfault") in events
    assert ("reply", "221 2.0.0 localhost Bye") in events
    assert kinds[-1] == "close"
    assert re.match(r"client quit \(in \d+ bytes, out \d+ bytes, \d+ ms\)$", events[-1][1]), events[-1]
