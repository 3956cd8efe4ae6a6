"""client.report through the package (issue 18): report() on a scope and on the server, and assert_client, the
one call that checks what the code under test did after a 4xx and a 5xx, failing with its timeline. The code
under test is smtplib (or a raw socket for a bare LF), scripted here; delays are only ever bounded below."""

import re
import smtplib
import socket
import time

import pytest

from conftest import IO_TIMEOUT, REPO_ROOT
from smtpfault import assert_report

PROFILE = {"rules": [
    {"when": {"stage": "rcpt", "rcpt": "later@*", "times": 3}, "do": {"reply": "421 4.3.2 Busy, try again later"}},
    {"when": {"stage": "rcpt", "rcpt": "nobody@*"}, "do": {"reply": "550 5.1.1 No such user"}}]}
BACKOFF_S = (0.1, 0.3, 0.7)  # each wait longer than the last by far more than a loaded machine's jitter


def one_call():
    """docs/client-checks.md's python block: the one assert_client call after the story this file scripts."""
    text = (REPO_ROOT / "docs" / "client-checks.md").read_text()
    [block] = re.findall(r"^```python\n(scope\.assert_client\(.*?)^```", text, re.S | re.M)
    return block


@pytest.fixture
def scope(smtpfault):
    with smtpfault.create_scope(PROFILE, listeners=["smtp"]) as s:
        yield s


def send(listener, rcpt):
    """One message through smtplib on a new connection: 250, or the code that refused it."""
    try:
        with smtplib.SMTP(listener.host, listener.port, timeout=IO_TIMEOUT) as smtp:
            smtp.sendmail("app@example.org", [rcpt], f"To: {rcpt}\r\nSubject: story\r\n\r\nhello\r\n")
        return 250
    except smtplib.SMTPRecipientsRefused as e:
        return e.recipients[rcpt][0]


def test_retried_the_421_with_backoff_and_gave_up_on_the_550(scope):
    codes = [send(scope.smtp, "later@example.com")]
    for wait in BACKOFF_S:
        time.sleep(wait)
        codes.append(send(scope.smtp, "later@example.com"))
    codes.append(send(scope.smtp, "nobody@example.com"))
    assert codes == [421, 421, 421, 250, 550]

    exec(one_call(), {"scope": scope})  # scope.assert_client(retried_4xx={"at_least": 3, "backoff": True}, ...)

    report = scope.report()
    assert report["scope"] == scope.id
    later = report["threads"][0]
    assert [t["code"] for t in later["tries"]] == [421, 421, 421, 250]
    assert all(got >= wait * 1000 - 2 for got, wait in zip(later["delays_ms"], BACKOFF_S)), later["delays_ms"]
    with pytest.raises(AssertionError, match="at least 4 times in one thread, the most was 3"):
        assert_report(report, retried_4xx={"at_least": 4})
    with pytest.raises(TypeError, match="atleast"):
        scope.assert_client(retried_4xx={"atleast": 3})


def test_hammering_fails_the_backoff_assertion_with_the_delays(scope):
    codes = [send(scope.smtp, "later@example.com") for _ in range(4)]  # no wait at all between tries
    assert codes == [421, 421, 421, 250]
    with pytest.raises(AssertionError) as failed:
        scope.assert_client(retried_4xx={"at_least": 3, "backoff": True})
    message = str(failed.value)
    assert message.startswith(f"scope {scope.id}: expected growing delays after each 4xx (backoff)"), message
    assert "app@example.org -> later@example.com: 421 at rcpt, after " in message, message
    assert "backoff no" in message and "250 at data_end (delivered; retries 3" in message, message


def test_a_repeated_550_fails_no_retry_of_a_5xx_naming_it(scope):
    assert [send(scope.smtp, "nobody@example.com") for _ in range(2)] == [550, 550]
    with pytest.raises(AssertionError) as failed:
        scope.assert_client(retried_5xx=False, gave_up_after_5xx=True)
    message = str(failed.value)
    assert 'expected no retry after a 5xx: "550 5.1.1 No such user" (at rcpt) tried again after ' in message, message
    assert "expected a 5xx given up on (tried once)" in message, message
    assert "finding retried-5xx (violation, RFC 5321 4.2.1" in message, message


def test_a_bare_lf_fails_no_violations_naming_the_finding(scope):
    with socket.create_connection((scope.smtp.host, scope.smtp.port), timeout=IO_TIMEOUT) as raw:
        conn = raw.makefile("rwb")
        assert conn.readline().startswith(b"220")
        conn.write(b"EHLO bare.example\n")  # LF alone: RFC 5321 2.3.8 wants CRLF
        conn.flush()
        while not conn.readline().startswith(b"250 "):
            pass
        conn.write(b"QUIT\r\n")
        conn.flush()
        assert conn.readline().startswith(b"221")
        conn.close()  # the socket closes with its last file: the session ends at the client's FIN
    with pytest.raises(AssertionError) as failed:
        scope.assert_client(violations=0)
    message = str(failed.value)
    assert "expected 0 violations, got 1: bare-lf (violation, RFC 5321 2.3.8" in message, message
    assert '"EHLO bare.example"' in message, message


def test_the_server_reports_each_client_address(smtpfault):
    assert send(smtpfault.smtp, "someone@example.com") == 250
    assert "127.0.0.1" in smtpfault.report()
    assert smtpfault.report("127.0.0.1")["client"] == "127.0.0.1"
    smtpfault.assert_client("127.0.0.1", retried_5xx=False)
    with pytest.raises(AssertionError, match="smtpfault saw no try of this client"):
        smtpfault.assert_client("192.0.2.1", violations=0)
