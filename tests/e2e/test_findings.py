"""Client findings (issue 18): for each protocol finding, a raw-socket client that commits it and one that
does not; the finding is read back where a user reads it: sessions.get, the transcript and the log."""

import base64
import socket
import ssl

import pytest

from harness.env import poll
from harness.pki import ca_file
from harness.profiles import reply_rule, rule, start_with_profile
from harness.smtp import RawClient, make_message


def session_findings(srv, client_address, timeout=10.0):
    """The closed session of the client at client_address ('HOST:PORT'): (session, its finding ids)."""
    with srv.admin() as admin:
        def closed():
            for s in admin.ok("sessions.list")["recent"]:
                if s["client"] == client_address:
                    return s["id"]
            return None

        sid = poll(closed, timeout, message=f"the session of {client_address} to close")
        session = admin.ok("sessions.get", session=sid)["session"]
    return session, [f["id"] for f in session["findings"]]


# The retry story's findings (test_client_report.py): a session has them when its transaction repeats one
# refused before, as the clean runs here do on purpose; run_session leaves them out unless asked.
STORY_FINDINGS = {"retry-4xx", "retried-5xx", "hammering", "greylist-retry-too-soon", "connections-past-limit",
                  "sent-after-rate-limit"}


def run_session(srv, script, story=False):
    """Connect, run script(client), close; the closed session and its finding ids (with the retry story's
    when story is true)."""
    c = RawClient(srv.host, srv.port)
    addr = c.local_address()
    try:
        script(c)
    finally:
        c.close()
    session, ids = session_findings(srv, addr)
    return session, [i for i in ids if story or i not in STORY_FINDINGS]


def dialog(*steps):
    """A script: the greeting and EHLO, each (command, expected reply code) in turn, then QUIT."""
    def script(c):
        c.greet()
        for line, code in steps:
            c.cmd(line, code)
        quit_(c)

    return script


def finding(session, fid):
    return next(f for f in session["findings"] if f["id"] == fid)


def quit_(c):
    c.cmd("QUIT", 221)


# -- bare line endings ------------------------------------------------------------------------------------------


def test_bare_lf_in_a_command(server):
    def commit(c):
        c.expect(220)
        c.send(b"EHLO lf.example\n")
        c.expect(250)
        quit_(c)

    session, ids = run_session(server, commit)
    assert ids == ["bare-lf"]
    f = finding(session, "bare-lf")
    assert f["severity"] == "violation" and "RFC 5321 2.3.8" in f["reference"]
    assert f["line"] == "EHLO lf.example" and f["count"] == 1 and f["session"] == session["id"]
    # the transcript and the log say it too
    assert any(e["event"] == "finding" and e["text"].startswith("bare-lf (violation)") for e in session["transcript"])
    server.wait_for_log(r"finding bare-lf \(violation\)")

    assert run_session(server, dialog())[1] == []


def test_bare_cr_in_a_command(server):
    session, ids = run_session(server, dialog((b"NOOP a\rb", 250)))
    assert ids == ["bare-cr"]
    assert finding(session, "bare-cr")["line"] == "NOOP a\\rb"


def data_session(body, mail="MAIL FROM:<a@example.org>", code=250):
    """A script sending one message (body, dot-stuffing left to the caller) and expecting code at its end."""
    def script(c):
        c.greet()
        c.cmd(mail, 250)
        c.cmd("RCPT TO:<b@example.org>", 250)
        c.cmd("DATA", 354)
        c.send(body + b".\r\n")
        c.expect(code)
        quit_(c)

    return script


@pytest.mark.parametrize("body,fid", [(b"Subject: x\r\n\r\none\ntwo\r\n", "bare-lf"),
                                      (b"Subject: x\r\n\r\none\rtwo\r\n", "bare-cr"),
                                      (b"Subject: x\r\n\r\ncaf\xc3\xa9\r\n", "8bit-without-8bitmime")])
def test_data_content_findings(server, body, fid):
    session, ids = run_session(server, data_session(body))
    assert ids == [fid]
    assert finding(session, fid)["line"] == "(message content)"
    clean = body.replace(b"\n", b"\r\n").replace(b"\r\r", b"\r").replace(b"\rtwo", b"\r\ntwo")
    if fid == "8bit-without-8bitmime":  # the same bytes, declared
        assert run_session(server, data_session(body, "MAIL FROM:<a@example.org> BODY=8BITMIME"))[1] == []
    else:
        assert run_session(server, data_session(clean))[1] == []


def bdat_session(chunks, mail="MAIL FROM:<a@example.org>"):
    """A script sending one message in BDAT chunks (RFC 3030), the last one with LAST."""
    def script(c):
        c.greet()
        c.cmd(mail, 250)
        c.cmd("RCPT TO:<b@example.org>", 250)
        for i, chunk in enumerate(chunks):
            last = b" LAST" if i == len(chunks) - 1 else b""
            c.send(b"BDAT %d%s\r\n%s" % (len(chunk), last, chunk))
            c.expect(250)
        quit_(c)

    return script


def test_bdat_content_8bit_without_8bitmime(server):
    # the 8-bit byte in the second chunk: the whole message is scanned, not only its first chunk
    chunks = [b"Subject: x\r\n\r\n", b"caf\xc3\xa9\r\n"]
    session, ids = run_session(server, bdat_session(chunks))
    assert ids == ["8bit-without-8bitmime"]
    assert finding(session, "8bit-without-8bitmime")["line"] == "(message content)"

    for body in ("8BITMIME", "BINARYMIME"):  # the same bytes, declared
        assert run_session(server, bdat_session(chunks, "MAIL FROM:<a@example.org> BODY=" + body))[1] == []
    assert run_session(server, bdat_session([b"Subject: x\r\n\r\n", b"cafe\r\n"]))[1] == []


# -- the greeting, pipelining, STARTTLS -----------------------------------------------------------------------


def test_early_talker(server_factory, tmp_path):
    srv = start_with_profile(server_factory, tmp_path, [rule("greeting", {"delay": "400ms"})])

    def commit(c):
        c.send("EHLO early.example\r\n")  # before the greeting, which comes 400 ms later
        c.expect(220)
        c.expect(250)
        quit_(c)

    session, ids = run_session(srv, commit)
    assert ids == ["early-talker"]
    assert finding(session, "early-talker")["line"] == "EHLO early.example"

    assert run_session(srv, dialog())[1] == []


def test_pipelining_not_offered(server_factory, tmp_path):
    srv = start_with_profile(server_factory, tmp_path, {"ehlo": {"remove": ["PIPELINING"]}})
    pipelined = "MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\n"

    def commit(c):
        c.greet()
        c.send(pipelined)
        c.expect(250)
        c.expect(250)
        quit_(c)

    session, ids = run_session(srv, commit)
    assert ids == ["pipelining-not-offered"]
    assert finding(session, "pipelining-not-offered")["line"] == "MAIL FROM:<a@example.org>"

    one_at_a_time = dialog(("MAIL FROM:<a@example.org>", 250), ("RCPT TO:<b@example.org>", 250))
    assert run_session(srv, one_at_a_time)[1] == []


def test_pipelining_when_offered_is_no_finding(server):
    def script(c):
        c.greet()
        c.send("MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\n")
        c.expect(250)
        c.expect(250)
        quit_(c)

    assert run_session(server, script)[1] == []


def test_pipelining_before_the_ehlo_reply(server):
    def script(c):
        c.expect(220)
        c.send("EHLO fast.example\r\nMAIL FROM:<a@example.org>\r\n")
        c.expect(250)
        c.expect(250)
        quit_(c)

    assert run_session(server, script)[1] == ["pipelining-not-offered"]


def tls_wrap(c):
    """c's socket, TLS from now on (the suite CA verifies the server)."""
    ctx = ssl.create_default_context(cafile=ca_file())
    ctx.check_hostname = False
    c.sock = ctx.wrap_socket(c.sock)


def starttls(c):
    """STARTTLS on a RawClient; its socket is TLS afterwards (the suite CA verifies the server)."""
    c.greet()
    c.cmd("STARTTLS", 220)
    tls_wrap(c)


def test_no_ehlo_after_starttls(server):
    def commit(c):
        starttls(c)
        c.cmd("MAIL FROM:<a@example.org>", 503)
        quit_(c)

    session, ids = run_session(server, commit)
    assert ids == ["no-ehlo-after-starttls"]
    assert finding(session, "no-ehlo-after-starttls")["line"] == "MAIL FROM:<a@example.org>"

    def clean(c):
        starttls(c)
        c.cmd("EHLO again.example", 250)
        c.cmd("MAIL FROM:<a@example.org>", 250)
        quit_(c)

    assert run_session(server, clean)[1] == []


def test_auth_before_starttls(server):
    secret = base64.b64encode(b"\0user\0hunter2").decode()

    def commit(c):
        c.greet()
        c.cmd(f"AUTH PLAIN {secret}")
        quit_(c)

    session, ids = run_session(server, commit)
    assert ids == ["auth-before-starttls"]
    f = finding(session, "auth-before-starttls")
    assert f["severity"] == "risk" and f["line"] == "AUTH PLAIN"  # the credential is never kept
    assert secret not in str(session)

    def clean(c):
        starttls(c)
        c.cmd("EHLO again.example", 250)
        c.cmd(f"AUTH PLAIN {secret}")
        quit_(c)

    assert run_session(server, clean)[1] == []


# -- MAIL, RCPT, DATA -----------------------------------------------------------------------------------------


def test_smtputf8_not_declared(server):
    session, ids = run_session(server, dialog(("MAIL FROM:<jörg@example.org>", 553)))
    assert ids == ["smtputf8-not-declared"]
    assert finding(session, "smtputf8-not-declared")["line"] == "MAIL FROM:<jörg@example.org>"

    clean = dialog(("MAIL FROM:<jörg@example.org> SMTPUTF8", 250), ("RCPT TO:<zoë@example.org>", 250))
    assert run_session(server, clean)[1] == []


def test_size_exceeded_anyway(server_factory, tmp_path):
    srv = start_with_profile(server_factory, tmp_path, {"server": {"size": 1000}})

    big = data_session(make_message("size", "x" * 2000), code=552)
    assert run_session(srv, big)[1] == ["size-exceeded-anyway"]
    # the same transaction again, smaller: no protocol finding, but the story saw a 552 tried again
    assert run_session(srv, data_session(make_message("size", "x" * 500)), story=True)[1] == ["retried-5xx"]


def test_data_after_all_rcpt_refused(server_factory, tmp_path):
    srv = start_with_profile(server_factory, tmp_path, [reply_rule("rcpt", "550 5.1.1 No such user")])

    commit = dialog(("MAIL FROM:<a@example.org>", 250), ("RCPT TO:<b@example.org>", 550), ("DATA", 554))
    session, ids = run_session(srv, commit)
    assert ids == ["data-after-all-rcpt-refused"]

    def pipelined(c):  # RFC 2920: DATA pipelined behind its RCPTs could not know
        c.greet()
        c.send("MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n")
        assert [r.code for r in c.replies(3)] == [250, 550, 554]
        quit_(c)

    assert run_session(srv, pipelined)[1] == []


# -- the end of a session -------------------------------------------------------------------------------------


def test_no_quit(server):
    def commit(c):
        c.greet()
        c.cmd("MAIL FROM:<a@example.org>", 250)

    session, ids = run_session(server, commit)
    assert ids == ["no-quit"]
    assert finding(session, "no-quit")["line"] == "(closed the connection in state mail)"

    def reset(c):
        c.greet()
        c.reset()

    assert run_session(server, reset)[1] == ["no-quit"]

    def close_notify(c):  # over TLS, a close_notify is leaving too (Nodemailer's way after STARTTLS)
        starttls(c)
        c.cmd("EHLO again.example", 250)
        c.sock = c.sock.unwrap()

    session, ids = run_session(server, close_notify)
    assert ids == ["no-quit"]
    assert session["close_reason"] == "client sent TLS close_notify"

    def refuses_the_certificate(c):  # leaving right after the handshake is refusing the server, not SMTP
        starttls(c)
        c.sock = c.sock.unwrap()

    assert run_session(server, refuses_the_certificate)[1] == []


def test_command_after_421(server_factory, tmp_path):
    srv = start_with_profile(server_factory, tmp_path, [reply_rule("rcpt", "421 4.3.2 Going down")])

    def until_closed(c):
        c.greet()
        c.cmd("MAIL FROM:<a@example.org>", 250)
        c.cmd("RCPT TO:<b@example.org>", 421)
        assert c.sock.recv(100) == b""  # the server's FIN: the 421 closed the session

    def commit(c):
        until_closed(c)
        c.send("RSET\r\n")

    session, ids = run_session(srv, commit)
    assert ids == ["command-after-421"]
    assert finding(session, "command-after-421")["line"] == "RSET"

    def quit_after_421(c):
        until_closed(c)
        c.send("QUIT\r\n")

    # QUIT after a 421 is harmless, and leaving without QUIT after a 421 is right: no finding either way
    assert run_session(srv, quit_after_421)[1] == []
    assert run_session(srv, until_closed)[1] == []


@pytest.mark.parametrize("listener", ["smtp", "smtps"])
def test_command_after_421_over_tls(server_factory, tmp_path, listener):
    """STARTTLS or implicit TLS: a command after the 421's close_notify is read through TLS and found."""
    srv = start_with_profile(server_factory, tmp_path, [reply_rule("noop", "421 4.3.2 Going down")])
    where = srv.listener(listener)

    def run(after_close):
        c = RawClient(where["host"], where["port"])
        addr = c.local_address()
        try:
            if listener == "smtp":
                starttls(c)
            else:
                tls_wrap(c)
                c.expect(220)
            c.cmd("EHLO tls.example", 250)
            c.cmd("NOOP", 421)
            assert c.sock.recv(100) == b""  # the server's close_notify: the 421 closed the session
            if after_close:
                c.send(after_close)
        finally:
            c.close()
        return session_findings(srv, addr)

    session, ids = run("RSET\r\n")
    assert ids == ["command-after-421"], session["transcript"]
    assert finding(session, "command-after-421")["line"] == "RSET"
    assert any(e["event"] == "finding" and e["text"].startswith("command-after-421 (risk)")
               for e in session["transcript"])

    assert run("QUIT\r\n")[1] == []
    assert run(None)[1] == []


def test_live_session_shows_its_findings(server):
    c = RawClient(server.host, server.port)
    try:
        c.expect(220)
        c.send(b"EHLO lf.example\n")
        c.expect(250)
        with server.admin() as admin:
            live = admin.ok("sessions.list")["live"]
            sid = next(s["id"] for s in live if s["client"] == c.local_address())
            s = admin.ok("sessions.get", session=sid)["session"]
            assert [f["id"] for f in s["findings"]] == ["bare-lf"]
        quit_(c)
    finally:
        c.close()


def test_smtplib_clean_run_has_no_findings(server):
    import smtplib
    with smtplib.SMTP(server.host, server.port, timeout=10) as client:
        addr = "%s:%d" % client.sock.getsockname()[:2]
        client.sendmail("a@example.org", ["b@example.org"], make_message("clean", "hello"))
    assert session_findings(server, addr)[1] == []


def test_tls_on_a_plaintext_port_is_no_finding(server_factory, tmp_path):
    """A client configured for implicit TLS sends a ClientHello where SMTP is spoken: the bytes are TLS, not
    its SMTP (no bare-lf, no early talker, no no-quit), whether they come before the greeting or after."""
    srv = start_with_profile(server_factory, tmp_path, [rule("greeting", {"delay": "300ms"})])
    for _ in range(2):
        sock = socket.create_connection((srv.host, srv.port), timeout=10)
        addr = "%s:%d" % sock.getsockname()[:2]
        ctx = ssl.create_default_context(cafile=ca_file())
        with pytest.raises((ssl.SSLError, OSError)):
            ctx.wrap_socket(sock, server_hostname="localhost")
        sock.close()
        session, ids = session_findings(srv, addr)
        assert ids == [], session["transcript"]
        assert any(e["event"] == "tls" and "plaintext port" in e["text"] for e in session["transcript"])


def test_tls_answered_in_plain_text_is_no_finding(server_factory, tmp_path):
    """The tls_plaintext fault greets a TLS client in plain text: its ClientHello, read as commands, is not
    its SMTP either."""
    srv = start_with_profile(server_factory, tmp_path, [rule("tls_handshake", {"tls_plaintext": True},
                                                             listener="smtps")])
    smtps = srv.listener("smtps")
    sock = socket.create_connection((smtps["host"], smtps["port"]), timeout=10)
    addr = "%s:%d" % sock.getsockname()[:2]
    with pytest.raises((ssl.SSLError, OSError)):
        ssl.create_default_context(cafile=ca_file()).wrap_socket(sock, server_hostname="localhost")
    sock.close()
    session, ids = session_findings(srv, addr)
    assert ids == [], session["transcript"]
