"""
mailer.py - the part of an application that sends mail, with Python's smtplib.

send_welcome(to, config) sends one message over STARTTLS. Temporary failures (4xx replies, connections that
fail or time out) are retried a few times with a pause; a refused login (535) is not retried but reported as
a configuration problem; other permanent refusals (5xx) are reported as they are. Every failure is raised as
MailError with a kind the rest of the application can act on.
"""

import smtplib
import ssl
import time
from dataclasses import dataclass
from email.message import EmailMessage


@dataclass
class MailConfig:
    host: str = "127.0.0.1"
    port: int = 2525
    user: str = ""
    password: str = ""
    ca_pem: str = ""  # the CA to verify the server's certificate with ("" for the system's)
    sender: str = "app@example.com"
    attempts: int = 3
    retry_delay: float = 1.0
    timeout: float = 10.0


USER_MESSAGES = {
    "auth": "The mail server refused our login: check the SMTP user name and password.",
    "temporary": "The mail server is not accepting mail right now; the message will be sent later.",
    "rejected": "The mail server refused the message.",
}


class MailError(Exception):
    def __init__(self, kind, cause, attempts):
        super().__init__(f"{USER_MESSAGES[kind]} ({cause!r})")
        self.kind = kind  # "auth", "temporary" or "rejected"
        self.user_message = USER_MESSAGES[kind]
        self.cause = cause
        self.attempts = attempts


def classify(err):
    if isinstance(err, smtplib.SMTPAuthenticationError):
        return "auth"
    if isinstance(err, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in err.recipients.values()]
        return "temporary" if all(400 <= c < 500 for c in codes) else "rejected"
    if isinstance(err, smtplib.SMTPResponseException):
        return "temporary" if 400 <= err.smtp_code < 500 else "rejected"
    if isinstance(err, (smtplib.SMTPServerDisconnected, OSError)):  # refused, reset, timed out
        return "temporary"
    return "rejected"


def _send_once(msg, config):
    context = ssl.create_default_context(cadata=config.ca_pem or None)
    with smtplib.SMTP(config.host, config.port, timeout=config.timeout) as smtp:
        smtp.starttls(context=context)
        if config.user:
            smtp.login(config.user, config.password)
        refused = smtp.send_message(msg)
    if refused:  # some recipients were refused: for a single recipient this cannot happen
        raise smtplib.SMTPRecipientsRefused(refused)


def send_welcome(to, config):
    """Send the welcome mail to `to`; returns the number of attempts it took, or raises MailError."""
    msg = EmailMessage()
    msg["From"] = config.sender
    msg["To"] = to
    msg["Subject"] = "Welcome!"
    msg.set_content("Thanks for signing up.")
    attempt = 0
    while True:
        attempt += 1
        try:
            _send_once(msg, config)
            return attempt
        except (smtplib.SMTPException, OSError) as err:
            kind = classify(err)
            if kind != "temporary" or attempt >= config.attempts:
                raise MailError(kind, err, attempt) from err
            time.sleep(config.retry_delay)
