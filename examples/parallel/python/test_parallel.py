"""test_parallel.py - tests with conflicting faults, run at once against one server: each in its own scope.

The smtpfault package's pytest plugin gives each test a scope (the `smtpfault_scope` fixture) with the fault
of its @pytest.mark.smtpfault marker, on the server at SMTPFAULT_ADMIN (started once for the whole run: make
run, or a compose service). python3 -m pytest -n 8 runs the tests in eight workers; every test sees only its
own fault and its own mail.
"""
import smtplib

import pytest

MESSAGE = "From: app@example.test\r\nTo: user@example.test\r\nSubject: {}\r\n\r\nHello.\r\n"


def send(scope, subject, rcpt="user@example.test"):
    with smtplib.SMTP(scope.smtp.host, scope.smtp.port, timeout=30) as client:
        client.sendmail("app@example.test", [rcpt], MESSAGE.format(subject))


@pytest.mark.smtpfault("rcpt-550-user-unknown", listeners=["smtp"])
@pytest.mark.parametrize("n", range(8))
def test_user_unknown(smtpfault_scope, n):
    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        send(smtpfault_scope, f"unknown {n}")
    assert refused.value.recipients["user@example.test"][0] == 550
    assert smtpfault_scope.messages() == []


@pytest.mark.smtpfault("server-421-try-again-later", listeners=["smtp"])
@pytest.mark.parametrize("n", range(8))
def test_try_again_later(smtpfault_scope, n):
    with pytest.raises(smtplib.SMTPConnectError) as error:
        send(smtpfault_scope, f"busy {n}")
    assert error.value.smtp_code == 421
    assert smtpfault_scope.stats()["faults"]["by_stage"] == {"greeting": 1}


@pytest.mark.smtpfault(listeners=["smtp"])  # no fault
@pytest.mark.parametrize("n", range(8))
def test_delivered(smtpfault_scope, n):
    send(smtpfault_scope, f"hello {n}")
    assert smtpfault_scope.wait_for_message(to="user@example.test")["recipients"] == ["user@example.test"]
    stats = smtpfault_scope.stats()
    assert stats["messages"]["accepted"] == 1 and stats["faults"]["fired"] == 0
