"""
Faults at the tls_handshake stage against real clients, on the implicit-TLS listener (smtps) and after
STARTTLS (smtp): fatal alerts, a stalled handshake, plaintext where TLS is expected, garbage, close and
reset, a slow handshake, per-rule certificates and protocol versions, and STARTTLS left out of EHLO.

Each test asserts what each client itself reports (collected for the error catalog) and what the server's
transcript says. Clients run side by side with short timeouts. Two clients do not bound a TLS handshake at
all (swaks --timeout and PHPMailer's Timeout do not cover it after STARTTLS): against a stalled handshake
they are killed after a few seconds and reported as hung, which is what their users meet.
"""

import re
import smtplib
import socket
import ssl

import pytest

from conftest import RawClient, make_message, suite_pki, transaction
from harness.env import HANG_GUARD
from fault_clients import (address, nodemailer, php_text, phpmailer, side_by_side, smtplib_send, start_with_profile,
                           swaks, tls_context)

LISTENER = {"implicit": "smtps", "starttls": "smtp"}
TRANSPORTS = ["implicit", "starttls"]


def handshake(**do):
    return {"rules": [{"when": {"stage": "tls_handshake"}, "do": do}]}


def clients(srv, transport, node=None, php=None, swaks_args=(), smtplib_timeout=10, swaks_timeout=10,
            bound=30, context=None):
    """The four clients against one transport, side by side; {name: Ran}."""
    listener = LISTENER[transport]
    return side_by_side(
        node=lambda: nodemailer(srv, listener, transport, bound=bound, **(node or {})),
        php=lambda: phpmailer(srv, listener, transport, bound=bound, **(php or {})),
        swaks=lambda: swaks(srv, *swaks_args, listener=listener, mode=transport, timeout=swaks_timeout, bound=bound),
        smtplib=lambda: smtplib_send(srv, listener, transport, timeout=smtplib_timeout, context=context))


def assert_node(ran, *texts, code="ESOCKET"):
    result = ran.value
    assert result is not None and result["ok"] is False and result["code"] == code, ran
    for text in texts:
        assert text in result["message"], (text, result["message"])


def assert_php(ran, transport, openssl_text):
    """PHPMailer: after STARTTLS the OpenSSL error is in ErrorInfo; with implicit TLS only in its debug
    output (level 3), ErrorInfo saying just that it could not connect."""
    r = ran.value
    assert r is not None and r["ok"] is False, ran
    if transport == "starttls":
        assert r["errorInfo"] == ("SMTP Error: Could not connect to SMTP host. Connection failed. "
                                  "stream_socket_enable_crypto(): " + openssl_text), r["errorInfo"]
    else:
        assert r["errorInfo"] == "SMTP Error: Could not connect to SMTP host.", r["errorInfo"]
        assert f"Connection failed. Error #2: stream_socket_client(): {openssl_text} [" in php_text(r), r["debug"]


def assert_swaks(ran, transport, text):
    proc = ran.value
    assert proc is not None and proc.returncode == 29, ran
    assert f"*** TLS startup failed (connect(): {text})" in proc.stderr, proc.stderr
    assert ("*** STARTTLS attempted but failed" in proc.stderr) == (transport == "starttls"), proc.stderr


def assert_smtplib(ran, kind, text):
    assert isinstance(ran.error, kind), ran
    assert str(ran.error).startswith(text), str(ran.error)


def ssl_failed(text):
    return "SSL operation failed with code 1. OpenSSL Error messages:\n" + text


# -- alerts ---------------------------------------------------------------------------------------------------

# alert -> (OpenSSL reason, the code OpenSSL prints, the alert number)
ALERTS = {
    "handshake_failure": ("sslv3 alert handshake failure", "0A000410", 40),
    "protocol_version": ("tlsv1 alert protocol version", "0A00042E", 70),
    "internal_error": ("tlsv1 alert internal error", "0A000438", 80),
    "access_denied": ("tlsv1 alert access denied", "0A000419", 49),
    "unrecognized_name": ("tlsv1 unrecognized name", "0A000458", 112),
}


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("alert", list(ALERTS))
def test_alert(server_factory, tmp_path, alert, transport):
    reason, code, number = ALERTS[alert]
    srv = start_with_profile(server_factory, tmp_path, handshake(tls_alert=alert))
    r = clients(srv, transport)

    assert_node(r["node"], f"error:{code}:SSL routines:ssl3_read_bytes:{reason}", f"SSL alert number {number}")
    assert_php(r["php"], transport, ssl_failed(f"error:{code}:SSL routines::{reason}"))
    assert_swaks(r["swaks"], transport, f"error:{code}:SSL routines::{reason}")
    python_name = reason.upper().replace(" ", "_")
    assert_smtplib(r["smtplib"], ssl.SSLError, f"[SSL: {python_name}] {reason} (_ssl.c:")

    assert len(srv.wait_for_log(rf"fault rule 0 at tls_handshake: TLS alert {alert}(?:\n|$)", count=4)) == 4
    srv.wait_for_log(rf"tls refused the ClientHello with alert {alert}(?:\n|$)", count=4)
    srv.wait_for_log(r"close fault: TLS alert \(", count=4)
    assert srv.message_ids() == []


# -- a stalled handshake ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_hang_stalls_the_handshake(server_factory, tmp_path, transport):
    srv = start_with_profile(server_factory, tmp_path, handshake(hang=True))
    r = clients(srv, transport, node={"connectionTimeout": 2000, "greetingTimeout": 2000},
                php={"timeout": 2, "timelimit": 2}, smtplib_timeout=2, swaks_timeout=2, bound=6.5)

    if transport == "implicit":
        assert_node(r["node"], "Connection timeout", code="ETIMEDOUT")
        assert "Connection failed. Error #2: stream_socket_client(): SSL: Handshake timed out [" in php_text(
            r["php"].value), r["php"]
        assert 1.8 <= r["php"].elapsed < HANG_GUARD, r["php"]
    else:
        # After "220 Ready to start TLS", nothing: Nodemailer's upgrade timer fires. PHPMailer's handshake
        # times out after Timeout, then its QUIT waits Timelimit for a reply that never comes (300 s by
        # default: a PHPMailer user waits five minutes).
        assert_node(r["node"], "TLS handshake timed out", code="ETIMEDOUT")
        assert r["php"].value["errorInfo"] == ("SMTP Error: Could not connect to SMTP host. Connection failed. "
                                               "stream_socket_enable_crypto(): SSL: Handshake timed out"), r["php"]
        assert 3.8 <= r["php"].elapsed < HANG_GUARD, r["php"]
    assert r["swaks"].hung, r["swaks"]  # swaks --timeout does not cover the TLS handshake
    assert_smtplib(r["smtplib"], TimeoutError, "_ssl.c:")
    assert str(r["smtplib"].error).endswith("The handshake operation timed out")
    assert 1.8 <= r["node"].elapsed < HANG_GUARD and 1.8 <= r["smtplib"].elapsed < HANG_GUARD, r

    # The server said nothing in TLS and held each connection until its client gave up (or was killed).
    assert len(srv.wait_for_log(r"fault rule 0 at tls_handshake: hang(?:\n|$)", count=4)) == 4
    closes = srv.wait_for_log(r"#\d+ close (client [a-z ]+) \(in \d+ bytes, out (\d+) bytes, (\d+) ms\)", count=4)
    for reason, out, ms in closes:
        assert int(ms) >= 1800, closes
        if transport == "implicit":
            assert out == "0", closes
    if transport == "starttls":
        assert len(re.findall(r"reply 220 2\.0\.0 Ready to start TLS", srv.log())) == 4


# -- plaintext and garbage where TLS is expected ---------------------------------------------------------------

WRONG_VERSION = "error:0A00010B:SSL routines::wrong version number"


def assert_wrong_version_number(r, transport):
    assert_node(r["node"], "error:0A00010B:SSL routines:ssl3_get_record:wrong version number")
    assert_php(r["php"], transport, ssl_failed(WRONG_VERSION))
    assert_swaks(r["swaks"], transport, WRONG_VERSION)
    assert_smtplib(r["smtplib"], ssl.SSLError, "[SSL: WRONG_VERSION_NUMBER] wrong version number (_ssl.c:")


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_plaintext_instead_of_tls(server_factory, tmp_path, transport):
    srv = start_with_profile(server_factory, tmp_path, handshake(tls_plaintext=True))
    r = clients(srv, transport)
    # The client's TLS layer reads SMTP text (the greeting, or the 500 the server answers its ClientHello
    # with, read as a command) as a TLS record.
    assert_wrong_version_number(r, transport)
    assert len(srv.wait_for_log(r"fault rule 0 at tls_handshake: answer in plain text(?:\n|$)", count=4)) == 4
    srv.wait_for_log(r"reply 500 5\.5\.2 Error: NUL character in command", count=4)

    # A plaintext client goes on in plain text: the greeting on the TLS port, the session after STARTTLS.
    with plain_client(srv, LISTENER[transport]) as c:
        if transport == "starttls":
            c.greet()
            c.cmd("STARTTLS", 220, "Ready to start TLS")
            msg_id = transaction(c, "plain@example.org", ["b@example.org"], make_message("plain", "in clear"),
                                 helo="again.example")
            (m,) = srv.wait_for_messages(1)
            assert m.id == msg_id
        else:
            c.expect(220, "localhost ESMTP smtpfault")
            ehlo = c.cmd("EHLO plain.example", 250)
            assert "STARTTLS" not in ehlo.lines
            c.cmd("MAIL FROM:<a@example.org>", 530, "Authentication required")


def plain_client(srv, listener):
    return RawClient(*address(srv, listener))


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_garbage_instead_of_a_handshake(server_factory, tmp_path, transport):
    srv = start_with_profile(server_factory, tmp_path, handshake(raw="garbage that is not TLS\r\n"))
    r = clients(srv, transport)
    assert_wrong_version_number(r, transport)
    assert len(srv.wait_for_log(r"fault rule 0 at tls_handshake: send 25 raw bytes(?:\n|$)", count=4)) == 4
    # Each connection ends after the 25 bytes (the client may reset it first, having read them).
    out = [int(n) for n in srv.wait_for_log(r"#\d+ close [^(]+ \(in \d+ bytes, out (\d+) bytes", count=4)]
    assert out == [25 if transport == "implicit" else 266 + 25] * 4, out

    # The bytes answer the ClientHello: after STARTTLS they do not arrive with the 220.
    with plain_client(srv, LISTENER[transport]) as c:
        if transport == "starttls":
            c.greet()
            c.cmd("STARTTLS", 220)
            c.sock.settimeout(0.5)
            with pytest.raises(socket.timeout):
                c.sock.recv(100)
            c.sock.settimeout(10)
        c.send(b"\x16\x03\x01\x00\x05hello")  # the start of a ClientHello
        assert c.read_until_closed() == b"garbage that is not TLS\r\n"


# -- close and reset ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_close_at_the_handshake(server_factory, tmp_path, transport):
    srv = start_with_profile(server_factory, tmp_path, handshake(close=True))
    r = clients(srv, transport)
    assert_node(r["node"], "Client network socket disconnected before secure TLS connection was established")
    php = r["php"].value
    assert php["errorInfo"] == "SMTP Error: Could not connect to SMTP host.", php
    assert_swaks(r["swaks"], transport, "error:0A000126:SSL routines::unexpected eof while reading")
    assert_smtplib(r["smtplib"], ssl.SSLZeroReturnError, "TLS/SSL connection has been closed (EOF) (_ssl.c:")
    assert len(srv.wait_for_log(r"fault rule 0 at tls_handshake: close the connection(?:\n|$)", count=4)) == 4
    srv.wait_for_log(r"close fault: closed at the TLS handshake \(", count=4)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_reset_at_the_handshake(server_factory, tmp_path, transport):
    srv = start_with_profile(server_factory, tmp_path, handshake(close="reset"))
    r = clients(srv, transport)
    host, port = address(srv, LISTENER[transport])
    node = r["node"].value["message"]
    # The RST races the client's own progress: it may land before the ClientHello is out (connect), or
    # after it, while the client reads (after STARTTLS the RST waits until the client's TCP has the 220).
    assert node in ("Client network socket disconnected before secure TLS connection was established",
                    "read ECONNRESET") or (transport == "implicit" and node == f"connect ECONNRESET {host}:{port}"), node
    php = php_text(r["php"].value)
    sw = r["swaks"].value
    e = r["smtplib"].error
    assert isinstance(e, ConnectionResetError) and e.errno == 104, r["smtplib"]
    if transport == "implicit":
        # On smtps the handshake is due at accept: the RST comes before the ClientHello, and a client sees
        # it from connect() or from its first read.
        # PHP: "Failed to connect to server: Connection reset by peer (104)" from connect(), or
        # "stream_socket_client(): SSL: Connection reset by peer" from the handshake.
        assert "Connection reset by peer" in php, php
        assert (sw.returncode == 2 and "IO::Socket::INET: connect: Connection reset by peer" in sw.stderr) or (
            sw.returncode == 29 and "*** TLS startup failed" in sw.stderr), sw
        srv.wait_for_log(r"close fault: reset at the TLS handshake \(in 0 bytes, out 0 bytes", count=4)
    else:
        assert "stream_socket_enable_crypto(): SSL: Connection reset by peer" in php, php
        assert_swaks(r["swaks"], transport, "error:00000000:lib(0)::reason(0)")
        srv.wait_for_log(r"close fault: reset at the TLS handshake \(", count=4)
    assert len(srv.wait_for_log(r"fault rule 0 at tls_handshake: reset the connection(?:\n|$)", count=4)) == 4


# -- a slow handshake ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_delay_before_the_handshake(server_factory, tmp_path, transport):
    delay = 2.0
    srv = start_with_profile(server_factory, tmp_path, handshake(delay=int(delay * 1000)))
    listener = LISTENER[transport]
    calls = dict(
        node_patient=lambda: nodemailer(srv, listener, transport, connectionTimeout=8000, greetingTimeout=8000),
        php_patient=lambda: phpmailer(srv, listener, transport),
        swaks_patient=lambda: swaks(srv, listener=listener, mode=transport),
        smtplib_patient=lambda: smtplib_send(srv, listener, transport, timeout=6),
        smtplib_impatient=lambda: smtplib_send(srv, listener, transport, timeout=1))
    if transport == "implicit":
        calls["node_impatient"] = lambda: nodemailer(srv, listener, transport, connectionTimeout=1000)
        calls["php_impatient"] = lambda: phpmailer(srv, listener, transport, timeout=1)
    else:
        calls["node_impatient"] = lambda: nodemailer(srv, listener, transport, greetingTimeout=1000)
    r = side_by_side(**calls)

    for name in ("node_patient", "php_patient", "swaks_patient", "smtplib_patient"):
        ran = r[name]
        assert ran.error is None and ran.elapsed >= delay, (name, ran)
    assert r["node_patient"].value["ok"] and r["php_patient"].value["ok"], r
    assert r["swaks_patient"].value.returncode == 0, r["swaks_patient"]
    assert r["smtplib_patient"].value == "TLSv1.3"

    assert_smtplib(r["smtplib_impatient"], TimeoutError, "_ssl.c:")
    assert r["smtplib_impatient"].elapsed < delay, r["smtplib_impatient"]
    if transport == "implicit":
        assert_node(r["node_impatient"], "Connection timeout", code="ETIMEDOUT")
        assert "stream_socket_client(): SSL: Handshake timed out [" in php_text(r["php_impatient"].value)
    else:
        assert_node(r["node_impatient"], "TLS handshake timed out", code="ETIMEDOUT")

    n = len(calls)
    assert len(srv.wait_for_log(r"fault rule 0 at tls_handshake: delay 2000 ms(?:\n|$)", count=n)) == n
    assert len(srv.wait_for_messages(4)) == 4


# -- certificates and versions ---------------------------------------------------------------------------------

# certificate -> (Nodemailer, Python's verify message, PHPMailer after STARTTLS, file in the test PKI)
CERTIFICATES = {
    "expired": ("certificate has expired", "certificate has expired",
                ssl_failed("error:0A000086:SSL routines::certificate verify failed"), "expired.pem"),
    "wrong_host": ("Hostname/IP does not match certificate's altnames: IP: 127.0.0.1 is not in the cert's list: ",
                   "IP address mismatch, certificate is not valid for '127.0.0.1'.",
                   "Peer certificate subjectAltName did not match expected name `127.0.0.1'", "wrong-host.pem"),
    "self_signed": ("self-signed certificate", "self-signed certificate",
                    ssl_failed("error:0A000086:SSL routines::certificate verify failed"), "self-signed.pem"),
    "untrusted": ("unable to verify the first certificate", "unable to get local issuer certificate",
                  ssl_failed("error:0A000086:SSL routines::certificate verify failed"), "untrusted.pem"),
}


def presented_certificate(srv, listener, transport):
    """The DER certificate the server presents, read by a client that verifies nothing."""
    ctx = ssl._create_unverified_context()
    host, port = address(srv, listener)
    if transport == "implicit":
        with socket.create_connection((host, port), timeout=10) as s, ctx.wrap_socket(s) as t:
            return t.getpeercert(binary_form=True)
    with smtplib.SMTP(host, port, timeout=10) as c:
        c.starttls(context=ctx)
        return c.sock.getpeercert(binary_form=True)


@pytest.mark.parametrize("cert", list(CERTIFICATES))
def test_rule_certificate(server_factory, tmp_path, cert):
    node_text, python_text, php_starttls_text, pem = CERTIFICATES[cert]
    # The rule holds for STARTTLS on smtp only: smtps keeps the valid certificate.
    profile = {"rules": [{"when": {"stage": "tls_handshake", "listener": "smtp"}, "do": {"certificate": cert}}]}
    srv = start_with_profile(server_factory, tmp_path, profile)
    r = clients(srv, "starttls", swaks_args=("--tls-verify", "--tls-ca-path", str(suite_pki() / "ca.pem")))
    unverified = side_by_side(swaks=lambda: swaks(srv, mode="starttls"),  # swaks verifies nothing by default
                              smtps=lambda: smtplib_send(srv, "smtps", "implicit"))

    assert_node(r["node"], node_text)
    assert r["node"].value["message"] == node_text
    assert_php(r["php"], "starttls", php_starttls_text)
    assert_smtplib(r["smtplib"], ssl.SSLCertVerificationError,
                   f"[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: {python_text} (_ssl.c:")
    sw = r["swaks"].value
    if cert == "wrong_host":
        assert sw.returncode == 0, sw  # swaks --tls-verify checks the chain, not the name
    else:
        assert_swaks(r["swaks"], "starttls", "error:0A000086:SSL routines::certificate verify failed")
    assert unverified["swaks"].value.returncode == 0, unverified["swaks"]
    assert unverified["smtps"].error is None, unverified["smtps"]

    expected = ssl.PEM_cert_to_DER_cert((suite_pki() / pem).read_text())
    valid = ssl.PEM_cert_to_DER_cert((suite_pki() / "server.pem").read_text())
    assert presented_certificate(srv, "smtp", "starttls") == expected
    assert presented_certificate(srv, "smtps", "implicit") == valid
    srv.wait_for_log(rf"fault rule 0 at tls_handshake: certificate {cert}", count=6)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_rule_versions_tls13_only_refuses_a_tls12_client(server_factory, tmp_path, transport):
    srv = start_with_profile(server_factory, tmp_path, handshake(versions=["1.3"]))
    listener = LISTENER[transport]
    calls = dict(
        node=lambda: nodemailer(srv, listener, transport, tls={"maxVersion": "TLSv1.2"}),
        swaks=lambda: swaks(srv, "--tls-protocol", "no_tlsv1_3", listener=listener, mode=transport),
        smtplib=lambda: smtplib_send(srv, listener, transport, context=tls_context(ssl.TLSVersion.TLSv1_2)),
        smtplib_13=lambda: smtplib_send(srv, listener, transport))
    if transport == "implicit":
        # PHPMailer's STARTTLS picks its own crypto method; on smtps the stream context's is used.
        calls["php"] = lambda: phpmailer(srv, listener, transport, ssl={"crypto_method": 33})  # TLSv1.2 client
    r = side_by_side(**calls)

    reason = "tlsv1 alert protocol version"
    assert_node(r["node"], f"error:0A00042E:SSL routines:ssl3_read_bytes:{reason}", "SSL alert number 70")
    assert_swaks(r["swaks"], transport, f"error:0A00042E:SSL routines::{reason}")
    assert_smtplib(r["smtplib"], ssl.SSLError, f"[SSL: TLSV1_ALERT_PROTOCOL_VERSION] {reason} (_ssl.c:")
    if transport == "implicit":
        assert_php(r["php"], transport, ssl_failed(f"error:0A00042E:SSL routines::{reason}"))
    assert r["smtplib_13"].value == "TLSv1.3", r["smtplib_13"]
    srv.wait_for_log(r"#\d+ tls TLSv1\.3 ")
    assert len(srv.wait_for_messages(1)) == 1


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_rule_versions_tls11_only_modern_clients_refuse(server_factory, tmp_path, transport):
    srv = start_with_profile(server_factory, tmp_path, handshake(versions=["1.1"]))
    r = clients(srv, transport)
    # Node.js (minimum TLS 1.2) refuses the version itself. Debian's OpenSSL 3.0 (Python, PHP, swaks) has
    # no such minimum: it gets as far as the ServerKeyExchange and refuses its TLS 1.1 (SHA-1) signature.
    assert_node(r["node"], "error:0A000102:SSL routines:ssl_choose_client_version:unsupported protocol")
    legacy = "error:0A00014D:SSL routines::legacy sigalg disallowed or unsupported"
    assert_php(r["php"], transport, ssl_failed(legacy))
    assert_swaks(r["swaks"], transport, legacy)
    assert_smtplib(r["smtplib"], ssl.SSLError, "[SSL] legacy sigalg disallowed or unsupported (_ssl.c:")
    assert srv.message_ids() == []


def test_rule_versions_tls12_only(server_factory, tmp_path):
    srv = start_with_profile(server_factory, tmp_path, handshake(versions=["1.2"]))
    r = side_by_side(implicit=lambda: smtplib_send(srv, "smtps", "implicit"),
                     starttls=lambda: smtplib_send(srv, "smtp", "starttls"),
                     node=lambda: nodemailer(srv, "smtps", "implicit"))
    assert r["implicit"].value == r["starttls"].value == "TLSv1.2", r
    assert r["node"].value["ok"] is True, r["node"]
    assert len(srv.wait_for_log(r"#\d+ tls TLSv1\.2 ", count=3)) == 3
    assert len(srv.wait_for_messages(3)) == 3


# -- STARTTLS left out ------------------------------------------------------------------------------------------


def test_ehlo_without_starttls(server_factory, tmp_path):
    srv = start_with_profile(server_factory, tmp_path, {"ehlo": {"remove": ["STARTTLS"]}})
    r = clients(srv, "starttls")

    node = r["node"].value
    assert (node["code"], node["responseCode"], node["command"]) == ("ETLS", 502, "STARTTLS"), node
    assert node["message"] == "Error upgrading connection with STARTTLS: 502 5.5.1 Error: command not implemented"
    php = r["php"].value
    assert php["errorInfo"] == ("SMTP Error: Could not connect to SMTP host. STARTTLS command failed "
                                "Error: command not implemented\r\n"), php
    sw = r["swaks"].value
    assert sw.returncode == 29 and "*** Host did not advertise STARTTLS" in sw.stderr, sw
    assert isinstance(r["smtplib"].error, smtplib.SMTPNotSupportedError), r["smtplib"]
    assert str(r["smtplib"].error) == "STARTTLS extension not supported by server."

    with srv.connect() as c:
        ehlo = c.greet()
        assert "STARTTLS" not in ehlo.lines
        c.cmd("STARTTLS", 502, "5.5.1 Error: command not implemented")
    assert srv.message_ids() == []
