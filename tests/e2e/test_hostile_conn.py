"""
Connection-level behaviour under faults and hostile clients: a reset or close delivers every reply queued
before it, what the admin socket sees does not depend on --log-level, a drip slows only the reply its rule
targets (and a shutdown neither waits for nor splits a dripped line), and a client that gives up during a
`delay` is noticed at once.

Each test asserts what the client itself reports (Nodemailer, smtplib, or a raw socket reading the exact
bytes) and, where it matters, what the server's transcript says.
"""

import os
import smtplib
import socket
import ssl
import time

import pytest

from conftest import make_message, poll, queued_id
from fault_clients import RCPT, SENDER, nodemailer, start_with_profile, tls_context


def at(stage, **do):
    """A profile with one rule: at stage, do what the caller says."""
    return {"rules": [{"when": {"stage": stage}, "do": do}]}


def read_replies_until_reset(client, timeout=10.0):
    """Every reply line the server sends until its RST (or FIN), and how the connection ended."""
    client.sock.settimeout(timeout)
    data = client.buf
    ending = "fin"
    while True:
        try:
            chunk = client.sock.recv(65536)
        except ConnectionResetError:
            ending = "rst"
            break
        if not chunk:
            break
        data += chunk
    return data.decode("utf-8", "replace").split("\r\n")[:-1], ending


# -- a reset or close delivers what was queued before it ------------------------------------------------------


def test_reset_mid_data_sends_354_before_the_rst(server_factory):
    srv = server_factory("--profile", "connection-reset-mid-data")
    with srv.connect() as c:
        c.greet()
        c.cmd(f"MAIL FROM:<{SENDER}>", 250)
        c.cmd(f"RCPT TO:<{RCPT}>", 250)
        c.cmd("DATA", 354, "End data with <CR><LF>.<CR><LF>")
        # The reset meets the client once it has sent its message (as when the server dies meanwhile): it
        # reads no reply, whatever its timing.
        c.send(make_message("reset", "hello") + b".\r\n")
        lines, ending = read_replies_until_reset(c)
    assert lines == [] and ending == "rst"
    srv.wait_for_log(r"close fault: connection reset \(in \d+ bytes, out \d+ bytes")


def test_reset_after_a_pipelined_batch_sends_every_reply_first(server_factory):
    srv = server_factory("--profile", "connection-reset-mid-data")
    with srv.connect() as c:
        c.greet()
        c.send(f"MAIL FROM:<{SENDER}>\r\nRCPT TO:<{RCPT}>\r\nRCPT TO:<other@example.org>\r\nDATA\r\n")
        assert [c.reply().code for _ in range(4)] == [250, 250, 250, 354]
        c.send(make_message("reset", "hello") + b".\r\n")
        lines, ending = read_replies_until_reset(c)
    assert lines == [] and ending == "rst"


def test_reset_over_starttls_sends_354_first(server_factory):
    srv = server_factory("--profile", "connection-reset-mid-data")
    host, port = srv.address
    with smtplib.SMTP(host, port, timeout=10) as client:
        client.ehlo("reset.example")
        client.starttls(context=tls_context())
        assert isinstance(client.sock, ssl.SSLSocket)
        client.ehlo("reset.example")
        assert client.mail(SENDER)[0] == 250
        assert client.rcpt(RCPT)[0] == 250
        code, text = client.docmd("DATA")
        assert (code, text) == (354, b"End data with <CR><LF>.<CR><LF>")
        client.send(b"Subject: x\r\n\r\nbody\r\n.\r\n")
        try:
            reply = client.getreply()
        except smtplib.SMTPServerDisconnected as e:
            reply = e
        assert isinstance(reply, smtplib.SMTPServerDisconnected), reply


def test_smtplib_gets_354_then_the_reset(server_factory):
    srv = server_factory("--profile", "connection-reset-mid-data")
    host, port = srv.address
    client = smtplib.SMTP(host, port, timeout=10)
    try:
        client.ehlo("reset.example")
        assert client.mail(SENDER)[0] == 250
        assert client.rcpt(RCPT)[0] == 250
        # smtplib's own view: DATA is answered, the reset comes after it.
        assert client.docmd("DATA") == (354, b"End data with <CR><LF>.<CR><LF>")
        client.send(b"Subject: x\r\n\r\nbody\r\n.\r\n")
        try:
            client.getreply()
            raise AssertionError("a reply after the reset")
        except smtplib.SMTPServerDisconnected as e:
            assert str(e) in ("Connection unexpectedly closed: [Errno 104] Connection reset by peer",
                              "Connection unexpectedly closed"), e
    finally:
        client.close()


def test_nodemailer_pipelining_gets_its_replies_before_the_reset(server_factory):
    srv = server_factory("--profile", "connection-reset-mid-data")
    result = nodemailer(srv)
    # Nodemailer pipelines MAIL and RCPT; it must see them answered and DATA's 354 before the reset, so its
    # error is about the message it was sending, not a reset before any reply to MAIL.
    assert result["ok"] is False, result
    log = [e["text"] for e in result["log"]]
    assert ["250 2.1.0 Sender <app@example.org> OK", "250 2.1.5 Recipient <rcpt@example.org> OK",
            "354 End data with <CR><LF>.<CR><LF>"] == [t for t in log if t[:4] in ("250 ", "354 ")], log
    assert any(t.endswith("bytes encoded mime message (source size 287 bytes)>") for t in log), log
    assert (result["code"], result["message"]) == ("ESOCKET", "read ECONNRESET"), result
    srv.wait_for_log(r"reply 354 End data")


# -- what the admin socket sees does not depend on --log-level ------------------------------------------------


def test_quiet_server_still_streams_and_keeps_every_event(short_tmp, server_factory):
    srv = server_factory("-q", "--admin", f"unix:{short_tmp}/admin.sock")
    with srv.admin() as sub, srv.admin() as admin:
        sub.ok("events.subscribe")
        with srv.connect() as c:
            c.greet("quiet.example")
            c.cmd(f"MAIL FROM:<{SENDER}>", 250)
            c.cmd(f"RCPT TO:<{RCPT}>", 250)
            c.cmd("DATA", 354)
            c.send(make_message("quiet", "hello") + b".\r\n")
            msg_id = queued_id(c.expect(250).text)
            c.cmd("QUIT", 221)
            c.read_until_closed()
        events = sub.events_until(lambda e: e["event"] == "close", timeout=10)
        kinds = [e["event"] for e in events]
        assert kinds[0] == "connect" and kinds[-1] == "close", kinds
        (message,) = [e["text"] for e in events if e["event"] == "message"]
        assert message.startswith(f"{msg_id}: "), message
        (sid,) = {e["session"] for e in events}
        s = admin.ok("sessions.get", session=sid)["session"]
        transcript = [(e["event"], e["text"]) for e in s["transcript"]]
        assert transcript == [(e["event"], e["text"]) for e in events]
    # and the transcript on stderr is quiet, as asked
    assert f"#{sid} connect" not in srv.log() and msg_id not in srv.log(), srv.log()


# -- a drip slows the reply its rule targets, and nothing else ------------------------------------------------

NOOPS = 200


def read_exactly(client, n, timeout):
    """n bytes from a RawClient (its buffer first), within timeout seconds; the bytes and when they were in."""
    deadline = time.monotonic() + timeout
    while len(client.buf) < n:
        left = deadline - time.monotonic()
        assert left > 0, f"only {len(client.buf)} of {n} bytes within {timeout}s: {client.buf[-200:]!r}"
        client.sock.settimeout(left)
        try:
            chunk = client.sock.recv(65536)
        except socket.timeout:
            continue
        assert chunk, f"connection closed after {len(client.buf)} of {n} bytes: {client.buf[-200:]!r}"
        client.buf += chunk
    data, client.buf = client.buf[:n], client.buf[n:]
    return data, time.monotonic()


def reference_replies(srv, batch):
    """What an undripped server answers to batch (a list of command lines), as bytes."""
    with srv.connect() as c:
        c.expect(220)
        c.send("".join(line + "\r\n" for line in batch))
        out = b"".join(b"".join(r + b"\r\n" for r in c.reply().raw) for _ in batch)
    return out


def test_drip_on_rcpt_leaves_the_earlier_replies_of_the_batch_alone(server_factory, tmp_path):
    batch = ["EHLO drip.example"] + ["NOOP"] * NOOPS + [f"MAIL FROM:<{SENDER}>", f"RCPT TO:<{RCPT}>"]
    expected = reference_replies(server_factory(), batch)
    rcpt_reply = b"250 2.1.5 Recipient <rcpt@example.org> OK\r\n"
    assert expected.endswith(rcpt_reply)
    bps = 10
    srv = start_with_profile(server_factory, tmp_path, at("rcpt", drip=bps))
    with srv.connect() as c:
        c.expect(220)
        c.send("".join(line + "\r\n" for line in batch))
        # Everything before the RCPT reply comes at once (dripped, it would take minutes)...
        before, t0 = read_exactly(c, len(expected) - len(rcpt_reply), timeout=15)
        assert before == expected[:-len(rcpt_reply)]
        # ...and the RCPT reply at the rule's rate.
        got, t1 = read_exactly(c, len(rcpt_reply), timeout=30)
        assert got == rcpt_reply
        assert t1 - t0 >= (len(rcpt_reply) - bps) / bps, t1 - t0
        c.cmd("QUIT", 221)
    srv.wait_for_log(r"fault rule 0 at rcpt: normal reply at")


def complete_lines(data):
    """data split into CRLF-ended lines, each of which must be a whole reply line."""
    text = data.decode("utf-8", "replace")
    assert text.endswith("\r\n"), f"the output ends in the middle of a line: {text[-200:]!r}"
    lines = text.split("\r\n")[:-1]
    for line in lines:
        assert line[:3].isdigit() and line[3:4] in (" ", "-"), f"a line made of pieces: {line!r} in {text!r}"
    return lines


def test_drain_deadline_ends_a_drip_and_the_421_follows_whole_lines(server_factory, tmp_path):
    # A drip at 1 byte/s would take 40 s to answer RCPT; the drain period is 3 s. The session is mid-transaction,
    # so it has the drain period, then the rest of the dripped reply goes at once and the 421 after it.
    srv = start_with_profile(server_factory, tmp_path, at("rcpt", drip=1), "--drain-timeout", "3")
    with srv.connect() as c:
        c.greet()
        c.send(f"MAIL FROM:<{SENDER}>\r\nRCPT TO:<{RCPT}>\r\n")
        c.expect(250)
        read_exactly(c, 2, timeout=15)  # the drip has begun
        c.buf = b"25" + c.buf
        srv.wait_for_log(r"fault rule 0 at rcpt: normal reply at")
        start = time.monotonic()
        srv.signal()
        data = c.read_until_closed(timeout=20)
        lines = complete_lines(data)
        assert lines == ["250 2.1.5 Recipient <rcpt@example.org> OK",
                         "421 4.3.2 localhost Service shutting down, closing connection"], lines
        assert srv.wait(timeout=20) == 0
        assert time.monotonic() - start < 3 + 10, time.monotonic() - start


def test_shutdown_421_waits_for_the_dripped_reply_to_end(server_factory, tmp_path):
    # Outside a transaction the 421 is due at once, but not in the middle of a dripped reply: the drip goes on
    # (no longer than the drain period) and the 421 follows the whole reply.
    srv = start_with_profile(server_factory, tmp_path, at("ehlo", drip=20), "--drain-timeout", "3")
    with srv.connect() as c:
        c.expect(220)
        c.send(b"EHLO drip.example\r\n")
        read_exactly(c, 5, timeout=15)
        c.buf = b"250-l" + c.buf
        start = time.monotonic()
        srv.signal()
        data = c.read_until_closed(timeout=20)
        lines = complete_lines(data)
        assert lines[0] == "250-localhost" and lines[-2].startswith("250 "), lines
        assert lines[-1] == "421 4.3.2 localhost Service shutting down, closing connection", lines
        assert srv.wait(timeout=20) == 0
        assert time.monotonic() - start < 3 + 10, time.monotonic() - start


# -- a client that gives up during a delay is noticed at once -------------------------------------------------

GIVE_UP = 20  # clients that leave during the delay


def open_fds(srv):
    return len(os.listdir(f"/proc/{srv.pid}/fd"))


def live_sessions(srv):
    with srv.admin() as admin:
        return admin.ok("stats")["sessions"]["live"]


@pytest.mark.parametrize("stage", ["connect", "mail"])
@pytest.mark.parametrize("how", ["fin", "rst"])
def test_clients_that_give_up_during_a_delay_are_closed_at_once(server_factory, tmp_path, stage, how):
    # A delay of an hour: without noticing the clients leave, the sessions and their sockets would stay that long.
    srv = start_with_profile(server_factory, tmp_path, at(stage, delay="1h"))
    baseline = open_fds(srv)
    clients = []
    for i in range(GIVE_UP):
        c = srv.connect()
        if stage == "mail":
            c.greet()
            # pipelined behind the delayed MAIL: input the server must not have read when the client leaves
            c.send(f"MAIL FROM:<{SENDER}>\r\nRCPT TO:<{RCPT}>\r\nNOOP\r\n")
        clients.append(c)
    poll(lambda: live_sessions(srv) == GIVE_UP, 10, message="every session to be live")
    srv.wait_for_log(rf"fault rule 0 at {stage}: delay", count=GIVE_UP)
    for c in clients:
        c.reset() if how == "rst" else c.close()
    poll(lambda: live_sessions(srv) == 0, 10, message=lambda: f"no live session (live: {live_sessions(srv)})")
    poll(lambda: open_fds(srv) <= baseline, 10, message=lambda: f"{open_fds(srv)} fds <= {baseline}")
    reason = "client reset the connection" if how == "rst" else "client closed the connection"
    closes = srv.wait_for_log(rf"close {reason}", count=GIVE_UP)
    assert len(closes) == GIVE_UP, closes
    # A client that stays gets its reply once the delay is over (the watch does not end live sessions).
    with srv.admin() as admin:
        admin.ok("profile.load", profile=at(stage, delay="1s"))
    with srv.connect() as c:
        if stage == "mail":
            c.greet()
            c.cmd(f"MAIL FROM:<{SENDER}>", 250)
        else:
            c.expect(220)
        c.cmd("QUIT", 221)


# -- the fastest suite the client offers ----------------------------------------------------------------------


def starttls_cipher(srv, maximum=None, ciphers=None):
    """(suite, version) that smtplib negotiates over STARTTLS."""
    host, port = srv.address
    ctx = tls_context(maximum)
    if ciphers is not None:
        ctx.set_ciphers(ciphers)
    with smtplib.SMTP(host, port, timeout=10) as client:
        client.ehlo("suite.example")
        client.starttls(context=ctx)
        name, version, _ = client.sock.cipher()
        assert client.noop()[0] == 250
    return name, version


def test_chacha20_poly1305_is_preferred_and_aes_still_works(server_factory):
    # Debian's wolfSSL has no AES-NI code: ChaCha20-Poly1305 is the fast suite, whatever the client prefers
    # (OpenSSL puts AES-GCM first).
    srv = server_factory()
    assert starttls_cipher(srv) == ("TLS_CHACHA20_POLY1305_SHA256", "TLSv1.3")
    assert starttls_cipher(srv, ssl.TLSVersion.TLSv1_2) == ("ECDHE-ECDSA-CHACHA20-POLY1305", "TLSv1.2")
    # a client without ChaCha20 still connects (TLS 1.3 suites cannot be narrowed through Python's ssl)
    assert starttls_cipher(srv, ssl.TLSVersion.TLSv1_2, "ECDHE-ECDSA-AES128-GCM-SHA256") == (
        "ECDHE-ECDSA-AES128-GCM-SHA256", "TLSv1.2")
