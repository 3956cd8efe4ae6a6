"""
Connection-level behaviour under faults and hostile clients: a reset or close delivers every reply queued
before it, what the admin socket sees does not depend on --log-level, a drip slows only the reply its rule
targets (and a shutdown neither waits for nor splits a dripped line), and a client that gives up during a
`delay` is noticed at once.

Each test asserts what the client itself reports (Nodemailer, smtplib, or a raw socket reading the exact
bytes) and, where it matters, what the server's transcript says.
"""

import smtplib
import ssl

from conftest import make_message, queued_id
from fault_clients import RCPT, SENDER, nodemailer, tls_context


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

