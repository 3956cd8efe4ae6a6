"""
test_mailer.py - the application's mail code against a running smtpfault (python3 -m unittest).

It starts nothing: SMTPFAULT_SMTP (default 127.0.0.1:2525) is the server's SMTP listener and
SMTPFAULT_ADMIN (default 127.0.0.1:2580) its admin socket. Each test puts a shipped profile in force by name,
checks what the application does, and resets the server afterwards.
"""

import json
import os
import socket
import unittest

from mailer import MailConfig, MailError, send_welcome


def host_port(value):
    host, _, port = value.rpartition(":")
    return host.strip("[]"), int(port)


SMTP = host_port(os.environ.get("SMTPFAULT_SMTP", "127.0.0.1:2525"))
ADMIN = host_port(os.environ.get("SMTPFAULT_ADMIN", "127.0.0.1:2580"))


def admin(**request):
    """One request to the admin socket (newline-delimited JSON); its response, or an AssertionError."""
    with socket.create_connection(ADMIN, timeout=10) as s:
        s.sendall((json.dumps(request) + "\n").encode())
        data = b""
        while not data.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    response = json.loads(data)
    if not response.get("ok"):
        raise AssertionError(f"admin {request['cmd']}: {response.get('error')}")
    return response


class WelcomeMailTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.ca = admin(cmd="tls.ca")["pem"]  # trust the server's test CA, as the app would trust a real one

    def tearDown(self):
        admin(cmd="reset")

    def config(self, **overrides):
        settings = dict(host=SMTP[0], port=SMTP[1], user="app@example.com", password="app-password",
                        ca_pem=self.ca, retry_delay=0.1, timeout=5)
        settings.update(overrides)
        return MailConfig(**settings)

    def test_welcome_mail_arrives(self):
        self.assertEqual(send_welcome("new.user@example.org", self.config()), 1)
        message = admin(cmd="messages.wait", to="new.user@example.org", timeout=5)["message"]
        self.assertEqual(message["recipients"], ["new.user@example.org"])

    def test_greylisting_is_retried_then_reported_as_temporary(self):
        admin(cmd="profile.load", name="greylisting-450")
        with self.assertRaises(MailError) as caught:
            send_welcome("new.user@example.org", self.config(attempts=2))
        self.assertEqual(caught.exception.kind, "temporary")
        self.assertEqual(caught.exception.attempts, 2)
        self.assertIn("Greylisted", str(caught.exception.cause))

    def test_connection_reset_is_retried_then_reported_as_temporary(self):
        admin(cmd="profile.load", name="connection-reset-mid-data")
        with self.assertRaises(MailError) as caught:
            send_welcome("new.user@example.org", self.config(attempts=3))
        self.assertEqual(caught.exception.kind, "temporary")
        self.assertEqual(caught.exception.attempts, 3)
        self.assertEqual(admin(cmd="messages.list")["messages"], [])

    def test_refused_login_is_shown_to_the_user(self):
        admin(cmd="profile.load", name="auth-535-wrong-password")
        with self.assertRaises(MailError) as caught:
            send_welcome("new.user@example.org", self.config(password="not-the-password"))
        self.assertEqual(caught.exception.kind, "auth")
        self.assertEqual(caught.exception.attempts, 1)
        self.assertIn("check the SMTP user name and password", caught.exception.user_message)

    def test_unknown_recipient_is_permanent(self):
        admin(cmd="profile.load", name="rcpt-550-user-unknown")
        with self.assertRaises(MailError) as caught:
            send_welcome("no.such.user@example.org", self.config())
        self.assertEqual(caught.exception.kind, "rejected")
        self.assertEqual(caught.exception.attempts, 1)


if __name__ == "__main__":
    unittest.main()
