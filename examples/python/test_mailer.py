"""
test_mailer.py - the application's mail code against smtpfault, with the smtpfault package's pytest plugin.

Each test gets a scope of its own (the `smtpfault_scope` fixture: its own SMTP ports, profile and messages) on
the server at SMTPFAULT_ADMIN, or on one the plugin starts when that is not set; the marker
@pytest.mark.smtpfault(NAME) puts a shipped profile in force in it. The tests can run in parallel (pytest -n).
"""

import pytest

from mailer import MailConfig, MailError, send_welcome


def config(scope, **overrides):
    """The application's settings for the scope's SMTP listener, trusting the server's test CA as the app
    would trust a real one."""
    settings = dict(host=scope.smtp.host, port=scope.smtp.port, user="app@example.com", password="app-password",
                    ca_pem=scope.ca, retry_delay=0.1, timeout=5)
    settings.update(overrides)
    return MailConfig(**settings)


def test_welcome_mail_arrives(smtpfault_scope):
    assert send_welcome("new.user@example.org", config(smtpfault_scope)) == 1
    message = smtpfault_scope.wait_for_message(to="new.user@example.org", timeout=5)
    assert message["recipients"] == ["new.user@example.org"]


@pytest.mark.smtpfault("greylisting-450")
def test_greylisting_is_retried_then_reported_as_temporary(smtpfault_scope):
    with pytest.raises(MailError) as caught:
        send_welcome("new.user@example.org", config(smtpfault_scope, attempts=2))
    assert caught.value.kind == "temporary" and caught.value.attempts == 2
    assert "Greylisted" in str(caught.value.cause)


@pytest.mark.smtpfault("connection-reset-mid-data")
def test_connection_reset_is_retried_then_reported_as_temporary(smtpfault_scope):
    with pytest.raises(MailError) as caught:
        send_welcome("new.user@example.org", config(smtpfault_scope, attempts=3))
    assert caught.value.kind == "temporary" and caught.value.attempts == 3
    assert smtpfault_scope.messages() == []


@pytest.mark.smtpfault("auth-535-wrong-password")
def test_refused_login_is_shown_to_the_user(smtpfault_scope):
    with pytest.raises(MailError) as caught:
        send_welcome("new.user@example.org", config(smtpfault_scope, password="not-the-password"))
    assert caught.value.kind == "auth" and caught.value.attempts == 1
    assert "check the SMTP user name and password" in caught.value.user_message


@pytest.mark.smtpfault("rcpt-550-user-unknown")
def test_unknown_recipient_is_permanent(smtpfault_scope):
    with pytest.raises(MailError) as caught:
        send_welcome("no.such.user@example.org", config(smtpfault_scope))
    assert caught.value.kind == "rejected" and caught.value.attempts == 1
