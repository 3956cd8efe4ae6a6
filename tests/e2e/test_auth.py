"""AUTH end to end (RFC 4954): every mechanism each client supports, right and wrong credentials, the XOAUTH2
failure exchange, and the server's replies to malformed, cancelled and misplaced AUTH.

The clients run over TLS with verification on (tls_clients.py); the raw-protocol tests use a RawClient, over TLS
where the listener wants it. Assertions are on each client's own report, the capture's "auth" and the transcript.
"""

import base64
import hashlib
import hmac
import json
import re
import smtplib

import pytest

from conftest import make_message, queued_id, transaction
from tls_clients import (AUTH_INVALID, AUTH_OK, AUTH_REQUIRED, ENCRYPTION_REQUIRED, HELO, IMPLICIT, PASSWORD,
                         STARTTLS_FIRST, USER, USER_ARG, XOAUTH2_ERROR, check_capture, nodemailer, nodemailer_lines,
                         php_failed, phpmailer, raw, raw_starttls, smtplib_tls, swaks, swaks_errors, swaks_replies)

WRONG = "not the password"
MECHANISMS = ["PLAIN", "LOGIN", "CRAM-MD5", "XOAUTH2"]
PHP_CONNECT_FAILED = "SMTP connect() failed. https://github.com/PHPMailer/PHPMailer/wiki/Troubleshooting"
php_exceptions = pytest.mark.parametrize("exceptions", [True, False], ids=["exceptions", "no-exceptions"])


@pytest.fixture
def auth_server(server_factory):
    """Two accounts: USER (the one the tests log in as) and another, so that a user's password is checked
    against that user's alone."""
    return server_factory("--user", USER_ARG, "--user", "bob@example.test:bobs password")


def b64(data):
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode()


def xoauth2(user, token):
    """The XOAUTH2 initial client response (Google's format), before base64."""
    return f"user={user}\x01auth=Bearer {token}\x01\x01"


def auth_logged(srv, mech, user, ok=True):
    srv.wait_for_log(rf"(?m)#\d+ auth {re.escape(mech)} as {re.escape(user)}" + ("$" if ok else ": wrong credentials$"))


def last_auth_event(srv):
    return [line.split(" auth ", 1)[1] for line in srv.log_lines() if re.match(r"^\S+ #\d+ auth ", line)][-1]


# -- smtplib ---------------------------------------------------------------------------------------------------


def smtplib_auth(client, mech, user, password):
    """client.auth() with the mechanism forced; XOAUTH2 through an authobject that records the challenges."""
    client.user, client.password = user, password
    if mech != "XOAUTH2":
        return client.auth(mech, getattr(client, "auth_" + mech.lower().replace("-", "_")))
    challenges = []

    def token(challenge=None):
        if challenge is None:
            return xoauth2(user, password)
        challenges.append(challenge)
        return ""  # the empty response a client owes the error challenge

    client.xoauth2_challenges = challenges
    return client.auth("XOAUTH2", token)


@pytest.mark.parametrize("listener", ["submission", IMPLICIT])
@pytest.mark.parametrize("mech", MECHANISMS)
def test_smtplib_every_mechanism(auth_server, mech, listener):
    with smtplib_tls(auth_server, listener) as client:
        assert client.esmtp_features["auth"] == " PLAIN LOGIN CRAM-MD5 XOAUTH2"
        assert smtplib_auth(client, mech, USER, PASSWORD) == (235, b"2.7.0 Authentication successful")
        assert client.sendmail("py@example.org", ["rcpt@example.org"], make_message(f"auth {mech}", "x")) == {}
    check_capture(auth_server, listener, USER)
    auth_logged(auth_server, mech, USER)


@pytest.mark.parametrize("mech", MECHANISMS)
def test_smtplib_wrong_credentials(auth_server, mech):
    with smtplib_tls(auth_server, IMPLICIT) as client:
        with pytest.raises(smtplib.SMTPAuthenticationError) as exc:
            smtplib_auth(client, mech, USER, WRONG)
        assert (exc.value.smtp_code, exc.value.smtp_error) == (535, b"5.7.8 Authentication credentials invalid")
        if mech == "XOAUTH2":
            (challenge,) = client.xoauth2_challenges  # decoded by smtplib from the 334
            assert json.loads(challenge) == XOAUTH2_ERROR
        # Another user's password is wrong too.
        with pytest.raises(smtplib.SMTPAuthenticationError):
            smtplib_auth(client, mech, USER, "bobs password")
        # The session goes on: the right password now logs in.
        assert smtplib_auth(client, mech, USER, PASSWORD)[0] == 235
        client.sendmail("py@example.org", ["rcpt@example.org"], make_message("after 535", "x"))
    check_capture(auth_server, IMPLICIT, USER)
    auth_logged(auth_server, mech, USER, ok=False)


def test_smtplib_login_prefers_cram_md5(auth_server):
    with smtplib_tls(auth_server, IMPLICIT) as client:
        assert client.login(USER, PASSWORD) == (235, b"2.7.0 Authentication successful")
        # Again: smtplib sends AUTH even when logged in, and takes the 503 for success.
        assert client.login(USER, WRONG) == (503, b"5.5.1 Error: already authenticated")
    assert last_auth_event(auth_server) == f"CRAM-MD5 as {USER}"


def test_smtplib_login_tries_every_mechanism(auth_server):
    """login() goes on to its next mechanism after a 535: an unknown user costs three attempts."""
    with smtplib_tls(auth_server, IMPLICIT) as client:
        with pytest.raises(smtplib.SMTPAuthenticationError) as exc:
            client.login("mallory@example.test", PASSWORD)
        assert (exc.value.smtp_code, exc.value.smtp_error) == (535, b"5.7.8 Authentication credentials invalid")
    tried = re.findall(r"(?m) auth (\S+) as mallory@example\.test: wrong credentials$", auth_server.log())
    assert tried == ["CRAM-MD5", "PLAIN", "LOGIN"]


def test_smtplib_auth_not_offered_before_starttls_on_submission(auth_server):
    port = auth_server.listener("submission")["port"]
    with smtplib.SMTP("localhost", port, local_hostname=HELO, timeout=20) as client:
        client.ehlo()
        assert client.has_extn("starttls") and not client.has_extn("auth"), client.esmtp_features
        with pytest.raises(smtplib.SMTPNotSupportedError) as exc:
            client.login(USER, PASSWORD)  # smtplib's own check: nothing was sent
        assert str(exc.value) == "SMTP AUTH extension not supported by server."
        with pytest.raises(smtplib.SMTPSenderRefused) as exc:
            client.sendmail("py@example.org", ["rcpt@example.org"], b"Subject: x\r\n\r\nx\r\n")
        assert (exc.value.smtp_code, exc.value.smtp_error) == (530, b"5.7.0 Must issue a STARTTLS command first")


@pytest.mark.parametrize("listener", ["submission", IMPLICIT])
def test_smtplib_mail_without_auth(auth_server, listener):
    with smtplib_tls(auth_server, listener) as client:
        with pytest.raises(smtplib.SMTPSenderRefused) as exc:
            client.sendmail("py@example.org", ["rcpt@example.org"], b"Subject: x\r\n\r\nx\r\n")
        assert (exc.value.smtp_code, exc.value.smtp_error) == (530, b"5.7.0 Authentication required")
        assert exc.value.sender == "py@example.org"
    assert auth_server.message_ids() == []


def test_any_credentials_without_users(server_factory):
    """With no --user, every mechanism accepts whatever it is given, and the capture names that user."""
    srv = server_factory()
    for i, mech in enumerate(MECHANISMS):
        user = f"anyone{i}@example.test"
        with smtplib_tls(srv, IMPLICIT) as client:
            assert smtplib_auth(client, mech, user, f"whatever {i}")[0] == 235
            client.sendmail("py@example.org", ["rcpt@example.org"], make_message(f"any {mech}", "x"))
        check_capture(srv, IMPLICIT, user, count=i + 1)
        auth_logged(srv, mech, user)


# -- Nodemailer ------------------------------------------------------------------------------------------------


def node_auth(mech, password):
    if mech == "XOAUTH2":
        return {"type": "OAuth2", "user": USER, "accessToken": password}
    return {"user": USER, "pass": password, "method": mech}


@pytest.mark.parametrize("listener", ["submission", IMPLICIT])
@pytest.mark.parametrize("mech", MECHANISMS)
def test_nodemailer_every_mechanism(auth_server, mech, listener):
    result = nodemailer(auth_server, listener, auth=node_auth(mech, PASSWORD))
    assert result["ok"] is True, result
    sent = nodemailer_lines(result, "client")
    assert [line.split(" ")[1] for line in sent if line.startswith("AUTH ")] == [mech], sent
    m = check_capture(auth_server, listener, USER)
    assert m.id == queued_id(result["response"])
    auth_logged(auth_server, mech, USER)


@pytest.mark.parametrize("mech", MECHANISMS)
def test_nodemailer_wrong_credentials(auth_server, mech):
    result = nodemailer(auth_server, IMPLICIT, auth=node_auth(mech, WRONG))
    assert result["ok"] is False, result
    assert (result["code"], result["responseCode"], result["command"]) == ("EAUTH", 535, f"AUTH {mech}"), result
    assert result["response"] == AUTH_INVALID
    if mech == "CRAM-MD5":
        assert result["message"] == f'Invalid login sequence while waiting for "235": {AUTH_INVALID}'
    else:
        assert result["message"] == f"Invalid login: {AUTH_INVALID}"
    sent, got = nodemailer_lines(result, "client"), nodemailer_lines(result, "server")
    if mech == "XOAUTH2":
        # The error challenge, an empty line from the client, the 535; then Nodemailer asks its token provider
        # for a fresh token (a fixed accessToken gives the same one) and tries once more before giving up.
        challenges = [json.loads(base64.b64decode(line[4:])) for line in got if line.startswith("334 ")]
        assert challenges == [XOAUTH2_ERROR, XOAUTH2_ERROR], got
        exchange = [line for line in sent if line.startswith("AUTH ") or line == ""]
        auth_line = "AUTH XOAUTH2 " + b64(xoauth2(USER, "/* secret */"))  # Nodemailer hides the token in its log
        assert exchange == [auth_line, "", auth_line, ""], sent
        assert got.count(AUTH_INVALID) == 2
    else:
        assert got.count(AUTH_INVALID) == 1
    assert auth_server.message_ids() == []
    auth_logged(auth_server, mech, USER, ok=False)


@pytest.mark.parametrize("listener", ["submission", IMPLICIT])
def test_nodemailer_without_credentials(auth_server, listener):
    result = nodemailer(auth_server, listener)
    assert result["ok"] is False, result
    assert (result["code"], result["responseCode"], result["command"]) == ("EENVELOPE", 530, "MAIL FROM"), result
    assert result["message"] == f"Mail command failed: {AUTH_REQUIRED}"


# -- PHPMailer -------------------------------------------------------------------------------------------------


@php_exceptions
@pytest.mark.parametrize("mech", MECHANISMS)
def test_phpmailer_every_mechanism(auth_server, mech, exceptions):
    r, debug = phpmailer(auth_server, IMPLICIT, exceptions, auth={"user": USER, "password": PASSWORD, "type": mech})
    assert r["ok"] is True and r["exception"] is None, (r, debug)
    assert any(line.startswith(f"CLIENT -> SERVER: AUTH {mech}") for line in debug), debug
    m = check_capture(auth_server, IMPLICIT, USER)
    assert m.id == r["transactionId"]
    auth_logged(auth_server, mech, USER)


@php_exceptions
@pytest.mark.parametrize("mech", MECHANISMS)
def test_phpmailer_wrong_credentials(auth_server, mech, exceptions):
    r, debug = phpmailer(auth_server, IMPLICIT, exceptions, auth={"user": USER, "password": WRONG, "type": mech})
    if exceptions:
        assert php_failed(r, exceptions) == "SMTP Error: Could not authenticate."
    else:
        # Without exceptions PHPMailer reports a failed login as a failed connection; the real reason is only
        # in its debug output.
        assert php_failed(r, exceptions) == PHP_CONNECT_FAILED
    assert "SMTP Error: Could not authenticate." in debug, debug
    if mech == "XOAUTH2":
        # PHPMailer expects 235 to its AUTH line and takes the error challenge for a failure: it never sends
        # the empty response, and its QUIT is what the server reads as the answer to the challenge.
        (challenge,) = [line for line in debug if line.startswith("SERVER -> CLIENT: 334 ")]
        assert json.loads(base64.b64decode(challenge.split(" ")[-1])) == XOAUTH2_ERROR
        assert f"SMTP ERROR: AUTH command failed: {challenge[len('SERVER -> CLIENT: '):]}" in debug, debug
        assert f"SMTP ERROR: QUIT command failed: {AUTH_INVALID}" in debug, debug
        # (the transcript masks SASL lines, so the QUIT shows as a 4-byte response)
        auth_server.wait_for_log(r"#\d+ command \(SASL response, 4 bytes\)\n\S+ #\d+ auth XOAUTH2 as "
                                 + re.escape(USER) + ": wrong credentials")
    else:
        # PHPMailer names the step that got the 535.
        step = {"PLAIN": "User & Password", "LOGIN": "Password", "CRAM-MD5": "Username"}[mech]
        assert f"SMTP ERROR: {step} command failed: {AUTH_INVALID}" in debug, debug
        assert r["lastReply"] == "221 2.0.0 localhost Bye"  # it said QUIT after the failure
    auth_logged(auth_server, mech, USER, ok=False)
    assert auth_server.message_ids() == []


@php_exceptions
def test_phpmailer_without_credentials(auth_server, exceptions):
    r, debug = phpmailer(auth_server, "submission", exceptions)
    error = php_failed(r, exceptions)
    assert error.startswith("The following From address failed: php@example.org : MAIL FROM command failed,"
                            "Authentication required\r\n,530,5.7.0"), error
    assert r["lastReply"] == AUTH_REQUIRED


# -- swaks -----------------------------------------------------------------------------------------------------
# swaks 20201014 speaks PLAIN, LOGIN and CRAM-MD5 (and others this server does not offer), not XOAUTH2.


@pytest.mark.parametrize("listener", ["submission", IMPLICIT])
@pytest.mark.parametrize("mech", ["PLAIN", "LOGIN", "CRAM-MD5"])
def test_swaks_every_mechanism(auth_server, mech, listener):
    proc = swaks(auth_server, listener, "--auth", mech, "--auth-user", USER, "--auth-password", PASSWORD)
    assert proc.returncode == 0, f"swaks exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    assert re.search(rf"^ ~> AUTH {mech}\b", proc.stdout, re.M), proc.stdout
    assert AUTH_OK in swaks_replies(proc.stdout)
    check_capture(auth_server, listener, USER)
    auth_logged(auth_server, mech, USER)


@pytest.mark.parametrize("mech", ["PLAIN", "LOGIN", "CRAM-MD5"])
def test_swaks_wrong_credentials(auth_server, mech):
    proc = swaks(auth_server, IMPLICIT, "--auth", mech, "--auth-user", USER, "--auth-password", WRONG)
    assert proc.returncode == 28, f"swaks exited {proc.returncode}:\n{proc.stdout}"  # 28: AUTH failed
    assert f"<~* {AUTH_INVALID}" in proc.stdout, proc.stdout
    assert swaks_errors(proc) == ["No authentication type succeeded"], proc.stdout + proc.stderr
    auth_logged(auth_server, mech, USER, ok=False)


def test_swaks_auth_on_submission_without_tls(auth_server):
    proc = swaks(auth_server, "submission", "--auth", "PLAIN", "--auth-user", USER, "--auth-password", PASSWORD,
                 tls=False)
    assert proc.returncode == 28, f"swaks exited {proc.returncode}:\n{proc.stdout}"
    assert swaks_errors(proc) == ["Host did not advertise authentication"], proc.stdout + proc.stderr
    assert "AUTH" not in " ".join(r for r in swaks_replies(proc.stdout) if r.startswith("250"))


def test_swaks_without_credentials(auth_server):
    proc = swaks(auth_server, IMPLICIT)
    assert proc.returncode == 23, f"swaks exited {proc.returncode}:\n{proc.stdout}"  # 23: MAIL FROM refused
    assert f"<~* {AUTH_REQUIRED}" in proc.stdout, proc.stdout


# -- the protocol, raw ------------------------------------------------------------------------------------------


@pytest.fixture
def tls_session(auth_server):
    """A RawClient on smtps, greeted: TLS up, not logged in."""
    with raw(auth_server, IMPLICIT) as c:
        c.greet(HELO)
        yield c


def plain_response(user=USER, password=PASSWORD):
    return b64(f"\0{user}\0{password}")


def test_xoauth2_failure_exchange(tls_session, auth_server):
    c = tls_session
    r = c.cmd(f"AUTH XOAUTH2 {b64(xoauth2(USER, WRONG))}", 334)
    assert json.loads(base64.b64decode(r.text)) == XOAUTH2_ERROR
    assert r.raw == [b"334 " + base64.b64encode(json.dumps(XOAUTH2_ERROR, separators=(",", ":")).encode())]
    c.cmd("", 535, "5.7.8 Authentication credentials invalid")
    # Whatever follows the error challenge fails, even the right token; a new AUTH may succeed.
    c.cmd(f"AUTH XOAUTH2 {b64(xoauth2(USER, WRONG))}", 334)
    c.cmd(b64(xoauth2(USER, PASSWORD)), 535)
    c.cmd(f"AUTH XOAUTH2 {b64(xoauth2(USER, PASSWORD))}", 235, "2.7.0 Authentication successful")


def test_exchanges_without_initial_response(tls_session):
    c = tls_session
    r = c.cmd("AUTH PLAIN", 334)
    assert r.raw == [b"334 "], r.raw  # an empty challenge
    c.cmd(plain_response(password=WRONG), 535)
    r = c.cmd("AUTH LOGIN", 334)
    assert base64.b64decode(r.text) == b"Username:"
    r = c.cmd(b64(USER), 334)
    assert base64.b64decode(r.text) == b"Password:"
    c.cmd(b64(WRONG), 535)
    r = c.cmd("AUTH XOAUTH2", 334)
    assert r.raw == [b"334 "], r.raw
    c.cmd(b64(xoauth2(USER, WRONG)), 334)  # the error challenge
    c.cmd("", 535)
    r = c.cmd("AUTH CRAM-MD5", 334)
    challenge = base64.b64decode(r.text)
    assert re.fullmatch(rb"<\d+\.\d+@localhost>", challenge), challenge
    digest = hmac.new(PASSWORD.encode(), challenge, hashlib.md5).hexdigest()
    c.cmd(b64(f"{USER} {digest}"), 235)


def test_login_with_initial_response(tls_session):
    c = tls_session
    r = c.cmd(f"AUTH LOGIN {b64(USER)}", 334)
    assert base64.b64decode(r.text) == b"Password:"
    c.cmd(b64(PASSWORD), 235)


@pytest.mark.parametrize("command, then, text", [
    ("AUTH PLAIN !!!!", None, "5.5.2 Error: cannot decode the response (not base64)"),
    ("AUTH PLAIN AGFsaWNl=", None, "5.5.2 Error: cannot decode the response (not base64)"),
    ("AUTH PLAIN", "not-base64", "5.5.2 Error: cannot decode the response (not base64)"),
    ("AUTH LOGIN", "dXNlcg=", "5.5.2 Error: cannot decode the response (not base64)"),
    ("AUTH PLAIN " + b64(f"{USER}{PASSWORD}"), None, "5.5.4 Error: malformed PLAIN response"),
    ("AUTH PLAIN =", None, "5.5.4 Error: malformed PLAIN response"),
    ("AUTH XOAUTH2 " + b64(f"user={USER}"), None, "5.5.4 Error: malformed XOAUTH2 response"),
    ("AUTH CRAM-MD5", b64("no-digest-here"), "5.5.4 Error: malformed CRAM-MD5 response"),
    ("AUTH CRAM-MD5 " + b64(f"{USER} {'0' * 32}"), None, "5.5.4 Error: malformed CRAM-MD5 response"),
], ids=["bad-alphabet", "bad-padding", "bad-continuation", "bad-length", "plain-no-nuls", "plain-empty",
        "xoauth2-syntax", "cram-syntax", "cram-initial-response"])
def test_malformed_responses(tls_session, command, then, text):
    c = tls_session
    if then is None:
        c.cmd(command, 501, text)
    else:
        c.cmd(command, 334)
        c.cmd(then, 501, text)
    c.cmd(f"AUTH PLAIN {plain_response()}", 235)  # the session is not harmed


@pytest.mark.parametrize("command, answers", [
    ("AUTH PLAIN", []),
    ("AUTH LOGIN", [b64(USER)]),
    ("AUTH CRAM-MD5", []),
    ("AUTH XOAUTH2", []),
    ("AUTH XOAUTH2 " + b64(xoauth2(USER, WRONG)), []),  # '*' instead of the empty line after the error challenge
], ids=["plain", "login-password", "cram-md5", "xoauth2", "xoauth2-after-error"])
def test_cancel(tls_session, auth_server, command, answers):
    c = tls_session
    c.cmd(command, 334)
    for a in answers:
        c.cmd(a, 334)
    c.cmd("*", 501, "5.0.0 Error: authentication cancelled")
    c.cmd(f"AUTH PLAIN {plain_response()}", 235)
    assert not re.search(r"auth \S+ as \S+: wrong credentials", auth_server.log())


def test_cancel_as_initial_response(tls_session):
    tls_session.cmd("AUTH PLAIN *", 501, "5.0.0 Error: authentication cancelled")


def test_auth_sequence_errors(auth_server):
    with raw(auth_server, IMPLICIT) as c:
        c.expect(220)
        c.cmd(f"AUTH PLAIN {plain_response()}", 503, "5.5.1 Error: send EHLO first")
        c.cmd(f"HELO {HELO}", 250)
        c.cmd(f"AUTH PLAIN {plain_response()}", 503, "5.5.1 Error: send EHLO first")  # AUTH is an ESMTP extension
        c.cmd(f"EHLO {HELO}", 250)
        c.cmd("AUTH", 501, "5.5.4 Syntax: AUTH mechanism [initial-response]")
        c.cmd("AUTH DIGEST-MD5", 504, "5.5.4 Error: unsupported authentication mechanism DIGEST-MD5")
        c.cmd(f"auth plain {plain_response(password=WRONG)}", 535)  # verb and mechanism in any case
        c.cmd(f"AUTH PLAIN {plain_response()}", 235)
        c.cmd(f"AUTH PLAIN {plain_response()}", 503, "5.5.1 Error: already authenticated")
        c.cmd("AUTH LOGIN", 503, "5.5.1 Error: already authenticated")
        msg_id = transaction(c, "a@example.org", ["b@example.org"], make_message("after sequence errors", "x"))
    m = check_capture(auth_server, IMPLICIT, USER)
    assert m.id == msg_id


def test_auth_inside_a_transaction(auth_server):
    with raw(auth_server, "smtp") as c:  # MAIL needs no AUTH here
        c.greet(HELO)
        raw_starttls(c)
        c.cmd("MAIL FROM:<a@example.org>", 250)
        c.cmd(f"AUTH PLAIN {plain_response()}", 503, "5.5.1 Error: MAIL transaction in progress")
        c.cmd("RCPT TO:<b@example.org>", 250)
        c.cmd("AUTH CRAM-MD5", 503, "5.5.1 Error: MAIL transaction in progress")
        c.cmd("RSET", 250)
        c.cmd(f"AUTH PLAIN {plain_response()}", 235)


def test_submission_policy(auth_server):
    """submission: STARTTLS before MAIL and before plaintext AUTH; AUTH offered only over TLS; MAIL needs AUTH."""
    with raw(auth_server, "submission") as c:
        before = c.greet(HELO)
        assert "STARTTLS" in before.lines
        assert not any(line.startswith("AUTH") for line in before.lines), before
        for mech, initial in [("PLAIN", plain_response()), ("LOGIN", b64(USER)), ("XOAUTH2", b64(xoauth2(USER, PASSWORD)))]:
            c.cmd(f"AUTH {mech} {initial}", 538, "5.7.11 Encryption required for requested authentication mechanism")
            c.cmd(f"AUTH {mech}", 538)
        c.cmd("MAIL FROM:<a@example.org>", 530, "5.7.0 Must issue a STARTTLS command first")
        after = raw_starttls(c)
        assert "AUTH PLAIN LOGIN CRAM-MD5 XOAUTH2" in after.lines and "STARTTLS" not in after.lines, after
        c.cmd("MAIL FROM:<a@example.org>", 530, "5.7.0 Authentication required")
        c.cmd(f"AUTH PLAIN {plain_response()}", 235)
        msg_id = transaction(c, "a@example.org", ["b@example.org"], make_message("submission", "x"))
    m = check_capture(auth_server, "submission", USER)
    assert m.id == msg_id
    assert ENCRYPTION_REQUIRED in auth_server.log() and STARTTLS_FIRST in auth_server.log()


def test_cram_md5_before_starttls_on_submission(auth_server):
    """CRAM-MD5 sends no password, so it is not refused with 538 before STARTTLS (though not advertised); the
    login it gives does not survive STARTTLS, and MAIL still needs TLS first."""
    with raw(auth_server, "submission") as c:
        c.greet(HELO)
        challenge = base64.b64decode(c.cmd("AUTH CRAM-MD5", 334).text)
        digest = hmac.new(PASSWORD.encode(), challenge, hashlib.md5).hexdigest()
        c.cmd(b64(f"{USER} {digest}"), 235)
        c.cmd("MAIL FROM:<a@example.org>", 530, "5.7.0 Must issue a STARTTLS command first")
        raw_starttls(c)
        c.cmd("MAIL FROM:<a@example.org>", 530, "5.7.0 Authentication required")


def test_smtps_requires_auth(tls_session):
    c = tls_session
    c.cmd("MAIL FROM:<a@example.org>", 530, "5.7.0 Authentication required")
    c.cmd(f"AUTH PLAIN {plain_response(password=WRONG)}", 535)
    c.cmd("MAIL FROM:<a@example.org>", 530, "5.7.0 Authentication required")
    c.cmd(f"AUTH PLAIN {plain_response()}", 235)
    c.cmd("MAIL FROM:<a@example.org>", 250)


def test_profile_users_and_mechanisms(server_factory, tmp_path):
    """A profile's server.users replaces --user, and server.auth_mechanisms is what EHLO offers and AUTH takes."""
    profile = tmp_path / "auth.json"
    profile.write_text(json.dumps({"server": {"users": [{"user": "app@example.com", "password": "app-password"}],
                                              "auth_mechanisms": ["PLAIN", "XOAUTH2"]}}))
    srv = server_factory("--user", USER_ARG, "--profile", str(profile))
    with raw(srv, IMPLICIT) as c:
        ehlo = c.greet(HELO)
        assert "AUTH PLAIN XOAUTH2" in ehlo.lines, ehlo
        c.cmd(f"AUTH LOGIN {b64(USER)}", 504, "5.5.4 Error: unsupported authentication mechanism LOGIN")
        c.cmd(f"AUTH PLAIN {plain_response()}", 535)  # --user is replaced
        c.cmd(f"AUTH PLAIN {plain_response('app@example.com', 'app-password')}", 235)
    result = nodemailer(srv, IMPLICIT, auth={"user": USER, "pass": PASSWORD, "method": "LOGIN"})
    # A client set on a mechanism the server does not offer sends it anyway, and fails on the 504.
    assert result["ok"] is False, result
    assert (result["code"], result["responseCode"], result["command"]) == ("EAUTH", 504, "AUTH LOGIN"), result
    assert result["message"] == ('Invalid login sequence while waiting for "334 VXNlcm5hbWU6": '
                                 "504 5.5.4 Error: unsupported authentication mechanism LOGIN")


def test_auth_stage_fault(server_factory, tmp_path):
    """The auth stage of a profile: the first right login gets a temporary failure, the next one succeeds."""
    profile = tmp_path / "auth-fault.json"
    profile.write_text(json.dumps({"rules": [{"when": {"stage": "auth", "auth": True, "times": 1},
                                              "do": {"reply": "454 4.7.0 Temporary authentication failure"}}]}))
    srv = server_factory("--user", USER_ARG, "--profile", str(profile))
    with smtplib_tls(srv, IMPLICIT) as client:
        with pytest.raises(smtplib.SMTPAuthenticationError) as exc:
            smtplib_auth(client, "PLAIN", USER, PASSWORD)
        assert (exc.value.smtp_code, exc.value.smtp_error) == (454, b"4.7.0 Temporary authentication failure")
        assert smtplib_auth(client, "PLAIN", USER, PASSWORD)[0] == 235
        client.sendmail("py@example.org", ["rcpt@example.org"], make_message("after 454", "x"))
    check_capture(srv, IMPLICIT, USER)
    srv.wait_for_log(r"#\d+ fault rule 0 at auth: reply 454 4\.7\.0 Temporary authentication failure")
