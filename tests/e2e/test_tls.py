"""TLS end to end: the three listeners with every client, STARTTLS (RFC 3207), the classic port mismatches,
certificate and version faults seen by verifying clients, and bad input on the TLS paths.

Every client verifies the server's certificate against the suite CA (conftest.ca_file()) and the name
"localhost"; the assertions are on what each client itself reports, what the server captured (ID.json's "tls"
and "auth") and what its transcript says. Helpers are in tls_clients.py.
"""

import base64
import re
import smtplib
import socket
import ssl
import time

import pytest

from conftest import ca_file, make_message, queued_id, transaction
from harness.env import HANG_GUARD
from harness.profiles import start_with_profile as profile_server
from tls_clients import (HELO, IMPLICIT, LISTENERS, PASSWORD, READY_TO_START_TLS, USER, USER_ARG, check_capture,
                         client_hello, nodemailer, nodemailer_lines, openssl_cipher, php_failed, phpmailer, raw,
                         raw_starttls, session_of, smtplib_tls, start_tls, swaks, swaks_errors, swaks_replies,
                         swaks_tls_cipher, verifying_context, wait_closed)

# Short client timeouts for the mismatch tests: long enough for an ASan build to greet, short enough to keep
# a test at a few seconds. Nothing else in these tests waits on them.
GREETING_TIMEOUT_S = 2

# PHPMailer with exceptions on (failures throw) and off (send() returns false and sets ErrorInfo)
php_exceptions = pytest.mark.parametrize("exceptions", [True, False], ids=["exceptions", "no-exceptions"])

# On smtp a client needs no AUTH; submission and smtps require it (the user is USER).
AUTH_FOR = {"smtp": None, "submission": USER, "smtps": USER}


@pytest.fixture
def tls_server(server_factory):
    """A server with one account (USER), so that submission and smtps can be used."""
    return server_factory("--user", USER_ARG)


# -- 1. every listener with every client ---------------------------------------------------------------------


@pytest.mark.parametrize("listener", LISTENERS)
def test_smtplib_on_every_listener(tls_server, listener):
    with smtplib_tls(tls_server, listener) as client:
        version, cipher = client.sock.version(), client.sock.cipher()[0]
        assert not client.has_extn("starttls"), "STARTTLS offered again over TLS"
        assert client.has_extn("auth")
        if AUTH_FOR[listener]:
            assert client.login(USER, PASSWORD) == (235, b"2.7.0 Authentication successful")
        refused = client.sendmail("py@example.org", ["rcpt@example.org"], make_message("smtplib tls", "over TLS"))
        assert refused == {}
    m = check_capture(tls_server, listener, AUTH_FOR[listener])
    assert m["tls"]["version"] == version
    assert openssl_cipher(m["tls"]["cipher"]) == cipher
    assert m["helo"] == HELO
    assert b"over TLS" in m.raw


@pytest.mark.parametrize("listener", LISTENERS)
def test_nodemailer_on_every_listener(tls_server, listener):
    auth = {"user": USER, "pass": PASSWORD} if AUTH_FOR[listener] else None
    result = nodemailer(tls_server, listener, auth=auth)
    assert result["ok"] is True, result
    msg_id = queued_id(result["response"])
    sent = nodemailer_lines(result, "client")
    if listener == IMPLICIT:
        assert "STARTTLS" not in sent
    else:
        assert sent.count("STARTTLS") == 1, sent
        assert any(e["text"] == "Connection upgraded with STARTTLS" for e in result["log"])
        # RFC 3207 4.2: the client says EHLO again after the handshake.
        ehlo = [i for i, line in enumerate(sent) if line.startswith("EHLO ")]
        assert len(ehlo) == 2 and ehlo[0] < sent.index("STARTTLS") < ehlo[1], sent
    if auth:
        assert any(line.startswith("AUTH PLAIN ") for line in sent), sent
    m = check_capture(tls_server, listener, AUTH_FOR[listener])
    assert m.id == msg_id


@php_exceptions
@pytest.mark.parametrize("listener", LISTENERS)
def test_phpmailer_on_every_listener(tls_server, listener, exceptions):
    auth = {"user": USER, "password": PASSWORD, "type": "LOGIN"} if AUTH_FOR[listener] else None
    options = {"auth": auth} if auth else {}
    r, debug = phpmailer(tls_server, listener, exceptions, **options)
    assert r["ok"] is True and r["returned"] is True and r["exception"] is None, (r, debug)
    assert ("CLIENT -> SERVER: STARTTLS" in debug) == (listener != IMPLICIT), debug
    if auth:
        assert "SERVER -> CLIENT: " + "235 2.7.0 Authentication successful" in debug, debug
    m = check_capture(tls_server, listener, AUTH_FOR[listener])
    assert m.id == r["transactionId"]


@pytest.mark.parametrize("listener", LISTENERS)
def test_swaks_on_every_listener(tls_server, listener):
    auth = ["--auth", "PLAIN", "--auth-user", USER, "--auth-password", PASSWORD] if AUTH_FOR[listener] else []
    proc = swaks(tls_server, listener, *auth)
    assert proc.returncode == 0, f"swaks exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    replies = swaks_replies(proc.stdout)
    if listener != IMPLICIT:
        assert READY_TO_START_TLS in replies
    queued = [r for r in replies if r.startswith("250 2.0.0 Ok: queued as ")]
    assert len(queued) == 1, replies
    version, cipher = swaks_tls_cipher(proc.stdout)
    assert "=== TLS peer DN=" in proc.stdout and "CN=localhost" in proc.stdout
    m = check_capture(tls_server, listener, AUTH_FOR[listener])
    assert m.id == queued_id(queued[0])
    assert m["tls"]["version"] == version and openssl_cipher(m["tls"]["cipher"]) == cipher


def test_transcript_names_the_handshake(tls_server):
    with smtplib_tls(tls_server, "smtp") as client:
        local = "%s:%d" % client.sock.getsockname()[:2]
        cipher = client.sock.cipher()[0]
    sid = session_of(tls_server, local)
    tls_server.wait_for_log(rf"#{sid} close ")
    (tls_line,) = [text for event, text in tls_server.session_events(sid, "tls")]
    version, wolf_cipher = tls_line.split()[:2]
    assert version == "TLSv1.3" and openssl_cipher(wolf_cipher) == cipher


# -- 3. STARTTLS, RFC 3207 -----------------------------------------------------------------------------------


@pytest.mark.parametrize("listener", ["smtp", "submission"])
def test_starttls_not_offered_again_and_refused_twice(tls_server, listener):
    with raw(tls_server, listener) as c:
        before = c.greet(HELO)
        assert "STARTTLS" in before.lines
        after = raw_starttls(c)
        assert "STARTTLS" not in after.lines, after
        c.cmd("STARTTLS", 554, "5.5.1 Error: TLS already active")
        c.cmd("NOOP", 250)  # the session goes on, still encrypted


def test_starttls_on_the_implicit_tls_port(tls_server):
    with raw(tls_server, IMPLICIT) as c:
        ehlo = c.greet(HELO)
        assert "STARTTLS" not in ehlo.lines
        c.cmd("STARTTLS", 554, "5.5.1 Error: TLS already active")


def test_ehlo_required_again_after_starttls(tls_server):
    with raw(tls_server, "smtp") as c:
        c.greet(HELO)
        c.cmd("STARTTLS", 220)
        start_tls(c)
        # RFC 3207 4.2: the server forgets what the client said before, its EHLO included.
        c.cmd("MAIL FROM:<a@example.org>", 503, "5.5.1 Error: send HELO/EHLO first")
        c.cmd("EHLO again.example", 250)
        msg_id = transaction(c, "a@example.org", ["b@example.org"], make_message("after tls", "x"))
    (m,) = tls_server.wait_for_messages(1)
    assert m.id == msg_id and m["helo"] == "again.example" and m["tls"]["version"] == "TLSv1.3"


def test_starttls_forgets_the_login(server_factory):
    """AUTH before STARTTLS (allowed on smtp) does not survive the handshake (RFC 3207 4.2)."""
    srv = server_factory("--user", USER_ARG)
    plain = base64.b64encode(f"\0{USER}\0{PASSWORD}".encode()).decode()
    with raw(srv, "smtp") as c:
        c.greet(HELO)
        c.cmd(f"AUTH PLAIN {plain}", 235)
        raw_starttls(c)
        c.cmd(f"AUTH PLAIN {plain}", 235)  # not "503 already authenticated": the login was forgotten
        msg_id = transaction(c, "a@example.org", ["b@example.org"], make_message("relogin", "x"))
    (m,) = srv.wait_for_messages(1)
    assert m.id == msg_id and m["auth"] == USER


@pytest.mark.parametrize("pipelined", [
    b"MAIL FROM:<x@y.example>\r\n",
    b"RSET\r\nMAIL FROM:<x@y.example>\r\nRCPT TO:<z@y.example>\r\n",
], ids=["mail", "three-commands"])
def test_plaintext_pipelined_after_starttls_is_discarded(tls_server, pipelined):
    with raw(tls_server, "smtp") as c:
        c.greet(HELO)
        local = c.local_address()
        c.send(b"STARTTLS\r\n" + pipelined)  # one write: RFC 3207 section 5's injection
        c.expect(220, "Ready to start TLS")
        start_tls(c)
        # Had the MAIL been executed, this EHLO would not be the first reply over TLS, and MAIL would say
        # "nested MAIL" or the RCPT would be accepted.
        c.cmd(f"EHLO {HELO}", 250)
        c.cmd("RCPT TO:<z@y.example>", 503, "need MAIL command")
        c.cmd("MAIL FROM:<ok@y.example>", 250)
        c.cmd("QUIT", 221)
    sid = session_of(tls_server, local)
    tls_server.wait_for_log(rf"#{sid} close ")
    notes = [t for e, t in tls_server.session_events(sid, "tls")]
    assert f"discarded {len(pipelined)} bytes the client sent after STARTTLS, before the handshake" in notes
    commands = [t for e, t in tls_server.session_events(sid, "command")]
    assert "MAIL FROM:<x@y.example>" not in commands and "RSET" not in commands, commands


def test_auth_pipelined_after_starttls_is_not_executed(tls_server):
    """The classic STARTTLS injection (CVE-2011-0411): an AUTH in the plaintext after STARTTLS logs nobody in."""
    plain = base64.b64encode(f"\0{USER}\0{PASSWORD}".encode()).decode()
    with raw(tls_server, "submission") as c:
        c.greet(HELO)
        c.send(f"STARTTLS\r\nAUTH PLAIN {plain}\r\n".encode())
        c.expect(220)
        start_tls(c)
        c.cmd(f"EHLO {HELO}", 250)
        c.cmd("MAIL FROM:<a@example.org>", 530, "5.7.0 Authentication required")
    tls_server.wait_for_log(r"discarded \d+ bytes the client sent after STARTTLS")
    assert not re.search(r" auth PLAIN as ", tls_server.log())


def test_starttls_in_a_transaction_and_with_an_argument(tls_server):
    with raw(tls_server, "smtp") as c:
        c.greet(HELO)
        c.cmd("STARTTLS now", 501, "5.5.4 Syntax: STARTTLS")
        c.cmd("MAIL FROM:<a@example.org>", 250)
        c.cmd("STARTTLS", 503, "5.5.1 Error: MAIL transaction in progress")
        c.cmd("RSET", 250)
        raw_starttls(c)


def test_starttls_removed_by_a_profile(server_factory, tmp_path):
    srv = profile_server(server_factory, tmp_path, {"ehlo": {"remove": ["STARTTLS"]}})
    with raw(srv, "smtp") as c:
        assert "STARTTLS" not in c.greet(HELO).lines
        c.cmd("STARTTLS", 502, "5.5.1 Error: command not implemented")
    # Nodemailer with requireTLS sends STARTTLS even when it is not offered, and gives up on the 502.
    result = nodemailer(srv, "smtp")
    assert result["ok"] is False, result
    assert (result["code"], result["command"], result["responseCode"]) == ("ETLS", "STARTTLS", 502), result
    assert result["message"] == "Error upgrading connection with STARTTLS: 502 5.5.1 Error: command not implemented"
    assert srv.message_ids() == []


# -- 4. the classic mismatches -------------------------------------------------------------------------------
#
# A client speaking implicit TLS to the STARTTLS port reads the plaintext "220 ..." greeting as a TLS record:
# OpenSSL calls that "wrong version number". A STARTTLS client on the implicit-TLS port waits for a greeting
# that never comes (the server waits for a ClientHello): a greeting timeout.


def mismatch_noted_on_plain_port(srv):
    srv.wait_for_log(r"#\d+ tls the client started a TLS handshake on a plaintext port: it expects implicit TLS "
                     r"\(port 465\), this listener speaks plain SMTP with STARTTLS")


def test_smtplib_implicit_tls_on_starttls_port(tls_server):
    with pytest.raises(ssl.SSLError) as exc:
        smtplib.SMTP_SSL("localhost", tls_server.listener("smtp")["port"], context=verifying_context(), timeout=10)
    assert exc.value.reason == "WRONG_VERSION_NUMBER", repr(exc.value)
    assert "[SSL: WRONG_VERSION_NUMBER] wrong version number" in str(exc.value)
    assert not isinstance(exc.value, ssl.SSLCertVerificationError)
    mismatch_noted_on_plain_port(tls_server)


def test_nodemailer_implicit_tls_on_starttls_port(tls_server):
    result = nodemailer(tls_server, "smtp", secure=True, requireTLS=False)
    assert result["ok"] is False, result
    assert result["code"] == "ESOCKET" and result["command"] == "CONN", result
    assert result["originalCode"] == "ERR_SSL_WRONG_VERSION_NUMBER", result
    assert "wrong version number" in result["message"], result
    mismatch_noted_on_plain_port(tls_server)


@php_exceptions
def test_phpmailer_implicit_tls_on_starttls_port(tls_server, exceptions):
    r, debug = phpmailer(tls_server, "smtp", exceptions, secure="ssl", debugLevel=3)
    error = php_failed(r, exceptions)
    if exceptions:
        assert error == "SMTP Error: Could not connect to SMTP host."
    else:
        assert error == "SMTP connect() failed. https://github.com/PHPMailer/PHPMailer/wiki/Troubleshooting"
    # PHP's own report, kept by PHPMailer's connection-level debug output:
    assert any("error:0A00010B:SSL routines::wrong version number" in line for line in debug), debug
    assert "SMTP ERROR: Failed to connect to server:  (0)" in debug, debug
    mismatch_noted_on_plain_port(tls_server)


def test_swaks_implicit_tls_on_starttls_port(tls_server):
    proc = swaks(tls_server, "smtp", "--tls-on-connect", "--tls-verify", "--tls-ca-path", ca_file(), tls=False)
    assert proc.returncode == 29, f"swaks exited {proc.returncode}:\n{proc.stdout}"  # 29: TLS failed
    assert swaks_errors(proc) == [
        "TLS startup failed (connect(): error:0A00010B:SSL routines::wrong version number)"], proc.stdout
    mismatch_noted_on_plain_port(tls_server)


def greeting_timeout_noted(srv, plaintext_from_client=None):
    """The smtps session the STARTTLS client opened ended in the handshake: closed by the client, or (when
    it sent a command after its timeout) refused as plaintext."""
    if plaintext_from_client:
        # The server quotes the first 15 bytes, up to the first unprintable one.
        quoted = re.escape(plaintext_from_client[:15].split("\r")[0])
        srv.wait_for_log(r"#\d+ tls handshake failed: the client sent plaintext \(\"" + quoted
                         + r"\.\.\.\"\) instead of a TLS ClientHello")
    else:
        srv.wait_for_log(r"#\d+ tls the client closed the connection during the TLS handshake")


def timed(fn):
    start = time.monotonic()
    value = fn()
    return value, time.monotonic() - start


def test_smtplib_starttls_client_on_implicit_tls_port(tls_server):
    def connect():
        with pytest.raises(smtplib.SMTPServerDisconnected) as exc:
            smtplib.SMTP("localhost", tls_server.listener(IMPLICIT)["port"], timeout=GREETING_TIMEOUT_S)
        return exc.value

    err, elapsed = timed(connect)
    assert str(err) == "Connection unexpectedly closed: timed out"
    assert isinstance(err.__context__, (socket.timeout, TimeoutError)), repr(err.__context__)
    assert GREETING_TIMEOUT_S - 0.5 <= elapsed < HANG_GUARD, elapsed
    greeting_timeout_noted(tls_server)


def test_nodemailer_starttls_client_on_implicit_tls_port(tls_server):
    result, elapsed = timed(lambda: nodemailer(tls_server, IMPLICIT, secure=False, requireTLS=True,
                                               greetingTimeout=GREETING_TIMEOUT_S * 1000))
    assert result["ok"] is False, result
    assert (result["code"], result["command"], result["message"]) == ("ETIMEDOUT", "CONN", "Greeting never received")
    assert elapsed < GREETING_TIMEOUT_S + 10, elapsed
    greeting_timeout_noted(tls_server)


@php_exceptions
def test_phpmailer_starttls_client_on_implicit_tls_port(tls_server, exceptions):
    # PHPMailer's Timeout bounds connect() and each read, but the wait for the greeting is bounded by the SMTP
    # object's Timelimit (300 s by default): both are set here.
    (r, debug), elapsed = timed(lambda: phpmailer(tls_server, IMPLICIT, exceptions, secure="tls",
                                                  timeout=GREETING_TIMEOUT_S, timelimit=GREETING_TIMEOUT_S))
    error = php_failed(r, exceptions)
    if exceptions:
        assert error == "SMTP Error: Could not connect to SMTP host."
    else:
        assert error == "SMTP connect() failed. https://github.com/PHPMailer/PHPMailer/wiki/Troubleshooting"
    assert "SERVER -> CLIENT: " in debug, debug  # the empty greeting PHPMailer read
    assert not any(line.startswith("CLIENT -> SERVER:") for line in debug), debug
    assert elapsed < GREETING_TIMEOUT_S + 10, elapsed
    greeting_timeout_noted(tls_server)


def test_swaks_starttls_client_on_implicit_tls_port(tls_server):
    proc, elapsed = timed(lambda: swaks(tls_server, IMPLICIT, "--tls", "--tls-verify", "--tls-ca-path", ca_file(),
                                        tls=False, timeout=GREETING_TIMEOUT_S))
    assert proc.returncode == 21, f"swaks exited {proc.returncode}:\n{proc.stdout}"  # 21: error reading the banner
    assert f"<** Timeout ({GREETING_TIMEOUT_S} secs) waiting for server response" in proc.stdout, proc.stdout
    assert swaks_errors(proc) == ["Remote host closed connection unexpectedly."], proc.stdout
    assert elapsed < GREETING_TIMEOUT_S + 10, elapsed
    # swaks then says QUIT, in plain text, to the TLS port: the server names it.
    greeting_timeout_noted(tls_server, plaintext_from_client="QUIT")


def test_plaintext_command_on_implicit_tls_port(tls_server):
    addr = tls_server.listener(IMPLICIT)
    with socket.create_connection((addr["host"], addr["port"]), timeout=10) as s:
        s.sendall(b"EHLO plain.example\r\n")
        data = wait_closed(s)
    assert data[:1] == b"\x15", f"expected a TLS alert record, got {data!r}"  # and no plaintext reply
    greeting_timeout_noted(tls_server, plaintext_from_client="EHLO plain.example\r\n")


# -- 5. certificate and version faults, seen by verifying clients ---------------------------------------------
#
# One profile per fault: {"tls": {"certificate": NAME}} makes every handshake present that certificate. The
# expected errors are what each client reported in this suite (OpenSSL 3.0 under Python, PHP and swaks; Node.js
# with its bundled OpenSSL).

CERT_FAULTS = ["expired", "wrong_host", "self_signed", "untrusted"]

# Python's ssl.SSLCertVerificationError: (verify_code, verify_message)
PYTHON_VERIFY = {
    "expired": (10, "certificate has expired"),
    "wrong_host": (62, "Hostname mismatch, certificate is not valid for 'localhost'."),
    "self_signed": (18, "self-signed certificate"),
    "untrusted": (20, "unable to get local issuer certificate"),
}

# Nodemailer: (the code of the error it wrapped, its message)
NODE_VERIFY = {
    "expired": ("CERT_HAS_EXPIRED", "certificate has expired"),
    "wrong_host": ("ERR_TLS_CERT_ALTNAME_INVALID", "Hostname/IP does not match certificate's altnames: Host: "
                   "localhost. is not in the cert's altnames: DNS:wrong-host.invalid"),
    "self_signed": ("DEPTH_ZERO_SELF_SIGNED_CERT", "self-signed certificate"),
    "untrusted": ("UNABLE_TO_VERIFY_LEAF_SIGNATURE", "unable to verify the first certificate"),
}

# PHP (through PHPMailer's connection-level debug output): the warning PHP's stream layer raised
PHP_CHAIN_FAILED = "SSL operation failed with code 1. OpenSSL Error messages:\nerror:0A000086:SSL routines::certificate verify failed"
PHP_VERIFY = {
    "expired": PHP_CHAIN_FAILED,
    "wrong_host": "Peer certificate subjectAltName did not match expected name `localhost'",
    "self_signed": PHP_CHAIN_FAILED,
    "untrusted": PHP_CHAIN_FAILED,
}


# The alert an OpenSSL client (Python, PHP, swaks) sends when it rejects the certificate, as the server names it
OPENSSL_ALERT = {
    "expired": "45 (certificate_expired)",
    "wrong_host": "42 (bad_certificate)",
    "self_signed": "48 (unknown_ca)",
    "untrusted": "48 (unknown_ca)",
}


@pytest.fixture(params=CERT_FAULTS)
def cert_fault(request, server_factory, tmp_path):
    """(fault name, a server presenting that certificate on every handshake)."""
    return request.param, profile_server(server_factory, tmp_path, {"tls": {"certificate": request.param}},
                                         "--user", USER_ARG)


def tls_events(srv):
    """The "tls" transcript events of the server's first session, once it has closed."""
    srv.wait_for_log(r"#1 close ")
    return [t for e, t in srv.session_events(1, "tls")]


def alert_noted(srv, fault):
    assert tls_events(srv)[-1] == f"handshake failed: the client sent TLS alert {OPENSSL_ALERT[fault]}"
    assert srv.message_ids() == []


def closed_in_handshake_noted(srv):
    assert tls_events(srv)[-1] == "the client closed the connection during the TLS handshake"
    assert srv.message_ids() == []


def handshake_done_then_closed(srv):
    """A client that checks the host name only after the handshake: TLS came up, then the client said nothing."""
    (sid,) = {int(m) for m in re.findall(r"#(\d+) connect ", srv.log())}
    srv.wait_for_log(rf"#{sid} close ")
    events = srv.session_events(sid)
    names = [e for e, t in events]
    (tls_line,) = [t for e, t in events if e == "tls"]
    assert tls_line.startswith("TLSv1.3 "), events
    assert "command" not in names[names.index("tls"):], events
    assert srv.message_ids() == []


@pytest.mark.parametrize("listener", ["smtps", "submission"])
def test_smtplib_certificate_faults(cert_fault, listener):
    fault, srv = cert_fault
    with pytest.raises(ssl.SSLCertVerificationError) as exc:
        smtplib_tls(srv, listener, timeout=10).close()
    code, text = PYTHON_VERIFY[fault]
    assert (exc.value.verify_code, exc.value.verify_message) == (code, text)
    assert f"[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: {text}" in str(exc.value)
    alert_noted(srv, fault)


@pytest.mark.parametrize("listener", ["smtps", "submission"])
def test_nodemailer_certificate_faults(cert_fault, listener):
    fault, srv = cert_fault
    result = nodemailer(srv, listener, auth={"user": USER, "pass": PASSWORD})
    assert result["ok"] is False, result
    code, text = NODE_VERIFY[fault]
    # The same error after STARTTLS as on the implicit-TLS port: Node's socket error, wrapped as ESOCKET.
    assert (result["code"], result["command"]) == ("ESOCKET", "CONN"), result
    assert (result["originalCode"], result["message"]) == (code, text), result
    # Node checks the certificate and closes the socket without sending an alert.
    closed_in_handshake_noted(srv)


@php_exceptions
@pytest.mark.parametrize("listener", ["smtps", "submission"])
def test_phpmailer_certificate_faults(cert_fault, listener, exceptions):
    fault, srv = cert_fault
    r, debug = phpmailer(srv, listener, exceptions, debugLevel=3,
                         auth={"user": USER, "password": PASSWORD, "type": "PLAIN"})
    error = php_failed(r, exceptions)
    php_error = PHP_VERIFY[fault]
    if listener == IMPLICIT:
        assert any(line.startswith(f"Connection failed. Error #2: stream_socket_client(): {php_error} [")
                   for line in debug), debug
        expected = "SMTP Error: Could not connect to SMTP host."
    else:
        assert any(line.startswith(f"Connection failed. Error #2: stream_socket_enable_crypto(): {php_error} [")
                   for line in debug), debug
        # After STARTTLS PHPMailer puts PHP's warning into its exception.
        expected = f"SMTP Error: Could not connect to SMTP host. Connection failed. stream_socket_enable_crypto(): {php_error}"
    if not exceptions:
        expected = "SMTP connect() failed. https://github.com/PHPMailer/PHPMailer/wiki/Troubleshooting"
    assert error == expected
    if fault == "wrong_host":
        handshake_done_then_closed(srv)  # PHP checks the name after the handshake
    else:
        alert_noted(srv, fault)


@pytest.mark.parametrize("listener", ["smtps", "submission"])
def test_swaks_certificate_faults(cert_fault, listener):
    fault, srv = cert_fault
    proc = swaks(srv, listener, "--auth", "PLAIN", "--auth-user", USER, "--auth-password", PASSWORD)
    if fault == "wrong_host":
        # swaks 20201014's --tls-verify checks the chain only, not the host name: the wrong-host certificate
        # passes and the message goes through.
        assert proc.returncode == 0, proc.stdout
        assert 'peer DN="/C=ZZ/O=smtpfault test PKI (not for production)/CN=wrong-host.invalid"' in proc.stdout
        check_capture(srv, listener, USER)
        return
    assert proc.returncode == 29, f"swaks exited {proc.returncode}:\n{proc.stdout}"  # 29: TLS failed
    expected = ["TLS startup failed (connect(): error:0A000086:SSL routines::certificate verify failed)"]
    if listener != IMPLICIT:
        expected.append("STARTTLS attempted but failed")
    assert swaks_errors(proc) == expected, proc.stdout + proc.stderr
    alert_noted(srv, fault)


# {"tls": {"versions": ["1.1"]}}: the server speaks TLS 1.1 only. Modern clients allow 1.2 and up; how each one
# fails depends on its ClientHello, and the server's answer to it.


@pytest.fixture
def tls11_server(server_factory, tmp_path):
    return profile_server(server_factory, tmp_path, {"tls": {"versions": ["1.1"]}}, "--user", USER_ARG)


def first_tls_event(srv):
    return tls_events(srv)[0]


@pytest.mark.parametrize("listener", ["smtps", "smtp"])
def test_smtplib_tls12_minimum_against_tls11_only(tls11_server, listener):
    # A client whose minimum is TLS 1.2 (upstream Python's default) and which offers the SHA-1 suites of
    # TLS 1.1 (OpenSSL's default list): the server picks TLS 1.1, the client refuses the version.
    ctx = verifying_context()
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers("DEFAULT")
    with pytest.raises(ssl.SSLError) as exc:
        smtplib_tls(tls11_server, listener, context=ctx, timeout=10).close()
    assert exc.value.reason == "UNSUPPORTED_PROTOCOL", repr(exc.value)
    assert "[SSL: UNSUPPORTED_PROTOCOL] unsupported protocol" in str(exc.value)
    assert first_tls_event(tls11_server) == "handshake failed: the client sent TLS alert 70 (protocol_version)"


@pytest.mark.parametrize("listener", ["smtps", "smtp"])
def test_smtplib_default_context_against_tls11_only(tls11_server, listener):
    ctx = verifying_context()
    with pytest.raises(ssl.SSLError) as exc:
        smtplib_tls(tls11_server, listener, context=ctx, timeout=10).close()
    if ctx.minimum_version == ssl.TLSVersion.TLSv1_2:
        # Upstream Python: TLS 1.2 and up, no SHA-1 suites. TLS 1.1 has only those: the server finds no common
        # suite and refuses the ClientHello with a handshake_failure alert.
        assert exc.value.reason == "SSLV3_ALERT_HANDSHAKE_FAILURE", repr(exc.value)
        assert "[SSL: SSLV3_ALERT_HANDSHAKE_FAILURE] sslv3 alert handshake failure" in str(exc.value)
        assert first_tls_event(tls11_server) == "handshake failed: can't match cipher suite (wolfSSL error -501)"
    else:
        # Debian's python3 leaves the minimum version and the cipher list to OpenSSL's defaults: TLS 1.1 is
        # agreed, then OpenSSL 3's security level refuses its SHA-1 signature.
        assert "legacy sigalg disallowed or unsupported" in str(exc.value), repr(exc.value)
        assert first_tls_event(tls11_server) == "handshake failed: the client sent TLS alert 80 (internal_error)"


def test_legacy_client_gets_tls11(tls11_server):
    """The profile does what it says: a client that still allows TLS 1.1 (and SHA-1) gets it."""
    ctx = verifying_context()
    with pytest.warns(DeprecationWarning):
        ctx.minimum_version = ssl.TLSVersion.TLSv1_1
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    with smtplib_tls(tls11_server, IMPLICIT, context=ctx) as client:
        assert client.sock.version() == "TLSv1.1"
        client.login(USER, PASSWORD)
        client.sendmail("old@example.org", ["rcpt@example.org"], make_message("tls 1.1", "legacy"))
    (m,) = tls11_server.wait_for_messages(1)
    assert m["tls"]["version"] == "TLSv1.1" and m["auth"] == USER


@pytest.mark.parametrize("listener", ["smtps", "submission"])
def test_nodemailer_against_tls11_only(tls11_server, listener):
    result = nodemailer(tls11_server, listener, auth={"user": USER, "pass": PASSWORD})
    assert result["ok"] is False, result
    assert (result["code"], result["command"]) == ("ESOCKET", "CONN"), result
    assert (result["originalCode"], result["reason"]) == ("ERR_SSL_UNSUPPORTED_PROTOCOL", "unsupported protocol")
    assert "SSL routines:ssl_choose_client_version:unsupported protocol" in result["message"], result
    assert first_tls_event(tls11_server) == "handshake failed: the client sent TLS alert 70 (protocol_version)"


PHP_LEGACY_SIGALG = "error:0A00014D:SSL routines::legacy sigalg disallowed or unsupported"


@php_exceptions
def test_phpmailer_against_tls11_only(tls11_server, exceptions):
    # PHP's client allows TLS 1.0 and up, so TLS 1.1 is agreed; but its SHA-1 signature is refused by
    # OpenSSL 3's security level.
    r, debug = phpmailer(tls11_server, IMPLICIT, exceptions, debugLevel=3,
                         auth={"user": USER, "password": PASSWORD, "type": "PLAIN"})
    php_failed(r, exceptions)
    assert any(PHP_LEGACY_SIGALG in line for line in debug), debug
    assert first_tls_event(tls11_server) == "handshake failed: the client sent TLS alert 80 (internal_error)"


def test_swaks_against_tls11_only(tls11_server):
    proc = swaks(tls11_server, IMPLICIT, "--auth", "PLAIN", "--auth-user", USER, "--auth-password", PASSWORD)
    assert proc.returncode == 29, f"swaks exited {proc.returncode}:\n{proc.stdout}"
    assert swaks_errors(proc) == [f"TLS startup failed (connect(): {PHP_LEGACY_SIGALG})"], proc.stdout
    assert first_tls_event(tls11_server) == "handshake failed: the client sent TLS alert 80 (internal_error)"


# -- 6. bad input on the TLS paths ---------------------------------------------------------------------------
#
# Each test keeps a good TLS session open in the middle of a transaction on another connection while the bad
# input arrives, and finishes it afterwards: one connection's broken handshake must not disturb another's.


def open_transaction(srv):
    """A session on smtps, logged in, with MAIL and RCPT done: a transaction in flight."""
    c = raw(srv, IMPLICIT)
    c.greet(HELO)
    plain = base64.b64encode(f"\0{USER}\0{PASSWORD}".encode()).decode()
    c.cmd(f"AUTH PLAIN {plain}", 235)
    c.cmd("MAIL FROM:<steady@example.org>", 250)
    c.cmd("RCPT TO:<rcpt@example.org>", 250)
    return c


def finish_transaction(srv, c):
    """DATA on the session open_transaction() started; the message must be captured, over TLS, as USER."""
    with c:
        c.cmd("DATA", 354)
        body = make_message("steady", "unaffected by the other connection")
        c.send(body + b".\r\n")
        msg_id = queued_id(c.expect(250).text)
        c.cmd("QUIT", 221)
    m = check_capture(srv, IMPLICIT, USER)
    assert m.id == msg_id and m.raw == body


def connect_plain(srv, name, timeout=10):
    addr = srv.listener(name)
    s = socket.create_connection((addr["host"], addr["port"]), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def local_of(s):
    return "%s:%d" % s.getsockname()[:2]


def corrupt_hello():
    hello = bytearray(client_hello())
    hello[5] = 0x63  # handshake type 99: no such message
    return bytes(hello)


GARBAGE = {
    "random-bytes": bytes([0x80]) + bytes((i * 197 + 13) % 256 for i in range(599)),
    "http-request": b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",
    "oversized-record": b"\x16\x03\x01\xff\xff" + b"\x01" * 64,
    "corrupt-client-hello": None,  # made at run time
}


@pytest.mark.parametrize("kind", list(GARBAGE))
def test_garbage_instead_of_client_hello(tls_server, kind):
    steady = open_transaction(tls_server)
    data = GARBAGE[kind] or corrupt_hello()
    with connect_plain(tls_server, IMPLICIT) as s:
        local = local_of(s)
        s.sendall(data)
        answer = wait_closed(s)  # the server closes: it neither hangs nor answers in plain text
    assert answer == b"" or answer[:1] == b"\x15", f"expected nothing or a TLS alert, got {answer[:40]!r}"
    sid = session_of(tls_server, local)
    tls_server.wait_for_log(rf"#{sid} close ")
    (note,) = [t for e, t in tls_server.session_events(sid, "tls")]
    assert note.startswith("handshake failed: "), note
    finish_transaction(tls_server, steady)


@pytest.mark.parametrize("how", ["fin", "rst"])
def test_client_closes_mid_handshake(tls_server, how):
    steady = open_transaction(tls_server)
    hello = client_hello()
    s = connect_plain(tls_server, IMPLICIT)
    local = local_of(s)
    s.sendall(hello[:len(hello) // 2])
    time.sleep(0.1)
    if how == "rst":
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    s.close()
    sid = session_of(tls_server, local)
    (close,) = tls_server.wait_for_log(rf"#{sid} close (.*) \(in ")
    notes = [t for e, t in tls_server.session_events(sid, "tls")]
    if how == "fin":
        assert notes == ["the client closed the connection during the TLS handshake"], notes
        assert close == "client closed the connection"
    else:
        assert close == "client reset the connection"
    finish_transaction(tls_server, steady)


def test_client_leaves_after_the_server_flight(tls_server):
    """The client reads ServerHello..Finished and goes without its own Finished."""
    steady = open_transaction(tls_server)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = verifying_context().wrap_bio(incoming, outgoing, server_hostname="localhost")
    with connect_plain(tls_server, IMPLICIT) as s:
        local = local_of(s)
        with pytest.raises(ssl.SSLWantReadError):
            obj.do_handshake()
        s.sendall(outgoing.read())
        flight = s.recv(65536)
        assert flight[:1] == b"\x16", flight[:16]  # a handshake record: the ServerHello
    sid = session_of(tls_server, local)
    tls_server.wait_for_log(rf"#{sid} close ")
    assert [t for e, t in tls_server.session_events(sid, "tls")] == [
        "the client closed the connection during the TLS handshake"]
    finish_transaction(tls_server, steady)


def test_client_hello_to_the_plain_port(tls_server):
    steady = open_transaction(tls_server)
    with connect_plain(tls_server, "smtp") as s:
        local = local_of(s)
        greeting = s.recv(1024)
        assert greeting.startswith(b"220 "), greeting
        s.sendall(client_hello())
        s.settimeout(10)
        answer = s.recv(65536)  # the server answers what it took for commands, in plain text
        assert answer.startswith(b"500 5.5.2 Error: NUL character in command\r\n"), answer
    sid = session_of(tls_server, local)
    tls_server.wait_for_log(rf"#{sid} close ")
    assert [t for e, t in tls_server.session_events(sid, "tls")] == [
        "the client started a TLS handshake on a plaintext port: it expects implicit TLS (port 465), this listener "
        "speaks plain SMTP with STARTTLS"]
    finish_transaction(tls_server, steady)


def test_garbage_after_starttls(tls_server):
    steady = open_transaction(tls_server)
    with raw(tls_server, "smtp") as c:
        c.greet(HELO)
        local = c.local_address()
        c.cmd("STARTTLS", 220)
        c.send(GARBAGE["random-bytes"])
        answer = wait_closed(c.sock)
    assert answer == b"" or answer[:1] == b"\x15", answer[:40]
    sid = session_of(tls_server, local)
    tls_server.wait_for_log(rf"#{sid} close ")
    (note,) = [t for e, t in tls_server.session_events(sid, "tls")]
    assert note.startswith("handshake failed: "), note
    finish_transaction(tls_server, steady)


def test_plaintext_after_starttls_220(tls_server):
    """A client that ignores the 220 and goes on in plain text: refused as plaintext, not executed."""
    with raw(tls_server, "smtp") as c:
        c.greet(HELO)
        c.cmd("STARTTLS", 220)
        c.send(b"MAIL FROM:<a@example.org>\r\n")
        answer = wait_closed(c.sock)
    assert answer == b"" or answer[:1] == b"\x15", answer[:40]
    tls_server.wait_for_log(r"#\d+ tls handshake failed: the client sent plaintext \(\"MAIL FROM:<a@ex\.\.\.\"\) "
                            r"instead of a TLS ClientHello")
    assert "command MAIL FROM:<a@example.org>" not in tls_server.log()


def test_client_hello_one_byte_at_a_time(tls_server):
    """The handshake is reassembled across reads: every byte of the client's flights in its own write."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = verifying_context().wrap_bio(incoming, outgoing, server_hostname="localhost")
    with connect_plain(tls_server, IMPLICIT, timeout=20) as s:
        while True:
            try:
                obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                pass
            for b in outgoing.read():
                s.sendall(bytes([b]))
            chunk = s.recv(65536)
            assert chunk, "the server closed the connection during the handshake"
            incoming.write(chunk)
        for b in outgoing.read():  # the client's Finished
            s.sendall(bytes([b]))
        data = b""
        while b"\r\n" not in data:
            try:
                data += obj.read(4096)
            except ssl.SSLWantReadError:
                chunk = s.recv(65536)
                assert chunk, "closed before the greeting"
                incoming.write(chunk)
        assert data.startswith(b"220 localhost ESMTP smtpfault"), data
        assert obj.version() == "TLSv1.3"
    tls_server.wait_for_log(r"#\d+ tls TLSv1\.3 ")


@pytest.mark.parametrize("where", ["implicit-tls", "after-starttls"])
def test_idle_timeout_during_the_handshake(server_factory, where):
    """A client that stops in the middle of the handshake is closed at the idle timeout, without a plaintext
    421 where TLS records are due."""
    srv = server_factory("--idle-timeout", "1")
    hello = client_hello()
    if where == "implicit-tls":
        s = connect_plain(srv, IMPLICIT)
    else:
        s = connect_plain(srv, "smtp")
        assert s.recv(1024).startswith(b"220 ")
        s.sendall(b"STARTTLS\r\n")
        assert s.recv(1024) == b"220 2.0.0 Ready to start TLS\r\n"
    with s:
        local = local_of(s)
        s.sendall(hello[:40])
        start = time.monotonic()
        answer = wait_closed(s, timeout=10)
        elapsed = time.monotonic() - start
    assert b"421" not in answer, f"plaintext reply in the middle of a TLS handshake: {answer!r}"
    assert answer == b"", answer
    assert 0.5 < elapsed < HANG_GUARD, elapsed
    sid = session_of(srv, local)
    (close,) = srv.wait_for_log(rf"#{sid} close (.*) \(in ")
    assert close == "idle timeout during the TLS handshake"
