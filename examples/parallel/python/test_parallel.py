"""test_parallel.py - tests with conflicting faults, run at once against one server: each in its own scope.

python3 -m pytest -n 8 runs them in eight workers; every test sees only its own fault and its own mail.
"""
import smtplib

import pytest

MESSAGE = "From: app@example.test\r\nTo: user@example.test\r\nSubject: {}\r\n\r\nHello.\r\n"


def send(scope, subject, rcpt="user@example.test"):
    with smtplib.SMTP("127.0.0.1", scope.port(), timeout=30) as client:
        client.sendmail("app@example.test", [rcpt], MESSAGE.format(subject))


@pytest.mark.parametrize("n", range(8))
def test_user_unknown(scope, n):
    scope("profile.load", name="rcpt-550-user-unknown")
    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        send(scope, f"unknown {n}")
    assert refused.value.recipients["user@example.test"][0] == 550
    assert scope("messages.list")["count"] == 0


@pytest.mark.parametrize("n", range(8))
def test_try_again_later(scope, n):
    scope("profile.load", name="server-421-try-again-later")
    with pytest.raises(smtplib.SMTPConnectError) as error:
        send(scope, f"busy {n}")
    assert error.value.smtp_code == 421
    assert scope("stats")["faults"]["by_stage"] == {"greeting": 1}


@pytest.mark.parametrize("n", range(8))
def test_delivered(scope, n):
    send(scope, f"hello {n}")
    message = scope("messages.wait", to="user@example.test", timeout=10)["message"]
    assert message["recipients"] == ["user@example.test"]
    assert scope("stats")["messages"]["accepted"] == 1 and scope("stats")["faults"]["fired"] == 0
