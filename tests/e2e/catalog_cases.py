"""
The error catalog's cases: one entry per shipped profile in faults/profiles/, saying how a client meets the
error (which listener, TLS, credentials, timeouts, message) and what each client must report.

test_catalog.py runs every case against every client and writes what the clients printed to a JSON file;
gen_errors_md.py renders docs/errors.md from these cases, the profiles' descriptions and that file. Adding a
profile to the catalog is one entry here (and its JSON file).

Standard library only: gen_errors_md.py imports this module outside pytest.

Clients:
  nodemailer            tests/clients/nodemailer-send.js: err.code, err.responseCode, err.response
  phpmailer             tests/clients/phpmailer-send.php, new PHPMailer(false): send() returns false, ErrorInfo
  phpmailer-exceptions  the same with new PHPMailer(true): the exception's class and message
  smtplib               Python's smtplib: the exception class, smtp_code and smtp_error
  swaks                 /usr/bin/swaks: its exit code and its error lines

An expectation is a dict of fields the client's observation must have (see test_catalog.observe_*): a plain
value must be equal, a Re(...) must match (re.search) the field's text.
"""

import re
from dataclasses import dataclass, field

CLIENTS = ("nodemailer", "phpmailer", "phpmailer-exceptions", "smtplib", "swaks")

CLIENT_TITLES = {
    "nodemailer": "Nodemailer",
    "phpmailer": "PHPMailer",
    "phpmailer-exceptions": "PHPMailer (exceptions)",
    "smtplib": "Python smtplib",
    "swaks": "swaks",
}

# The accounts the auth profiles accept (see their server.users).
APP = ("app@example.com", "app-password")
GMAIL = ("app@gmail.com", "abcdefghijklmnop")
M365 = ("app@contoso.com", "app-password")
WRONG = "wrong-password"


class Re:
    """An expected value that is a regular expression (re.search on the observed text)."""

    def __init__(self, pattern):
        self.pattern = pattern

    def matches(self, value):
        return value is not None and re.search(self.pattern, str(value)) is not None

    def __repr__(self):
        return f"Re({self.pattern!r})"


@dataclass
class Case:
    profile: str  # the shipped profile's name (faults/profiles/NAME.json)
    title: str  # heading in docs/errors.md
    symptom: str  # what users see or search for, in their words
    listener: str = "smtp"  # smtp, submission or smtps
    tls: str = "none"  # none, starttls or implicit (certificates verified against the test CA)
    auth: tuple = None  # (user, password) to log in with, or None
    timeout: float = 10.0  # the clients' connect, greeting and command timeouts, in seconds
    recipients: tuple = ("rcpt@example.org",)
    sender: str = "app@example.com"
    body_size: int = 0  # pad the body to this many bytes (0: a short body)
    hold_connection: bool = False  # keep one connection open from the same address while the client runs
    stored: int = 0  # messages the server must keep per client run
    note: str = ""  # for docs/errors.md: what the client output hides, how to fix
    group: str = ""  # the section of docs/errors.md (set by group())
    expect: dict = field(default_factory=dict)  # client -> {field: value or Re}

    @property
    def settings(self):
        """The client settings in words, for docs/errors.md."""
        parts = [f"{self.listener} listener"]
        parts.append({"none": "no TLS", "starttls": "STARTTLS required", "implicit": "implicit TLS"}[self.tls])
        if self.tls != "none":
            parts.append("certificate verified against ca.pem")
        if self.auth:
            parts.append(f"AUTH as {self.auth[0]} / {self.auth[1]}")
        if self.timeout < 10:
            parts.append(f"{self.timeout:g} s timeouts")
        if len(self.recipients) > 1:
            parts.append(f"{len(self.recipients)} recipients")
        if self.body_size:
            parts.append(f"a {self.body_size // 1000} kB message")
        if self.hold_connection:
            parts.append("a second connection already open")
        return ", ".join(parts)


# -- expectations, one helper per client -------------------------------------------------------------------

# PHPMailer's messages (its language file) that hide the cause
PM_CONNECT_FAILED = "SMTP connect() failed. https://github.com/PHPMailer/PHPMailer/wiki/Troubleshooting"
PM_CANNOT_CONNECT = "SMTP Error: Could not connect to SMTP host."
PM_AUTH = "SMTP Error: Could not authenticate."
PM_DATA = "SMTP Error: data not accepted."
PM_EXCEPTION = "PHPMailer\\PHPMailer\\Exception"


def sent():
    """Any client: the message was accepted (stored says whether it was kept)."""
    return {"ok": True}


def nm(code, response_code=None, response=None, message=None):
    """Nodemailer: err.code, err.responseCode, and err.response (or err.message when there is no reply)."""
    e = {"ok": False, "code": code, "responseCode": response_code}
    if response is not None:
        e["response"] = response
    if message is not None:
        e["message"] = message
    return e


def pm(error_info):
    """PHPMailer without exceptions: send() returns false, ErrorInfo says why."""
    return {"ok": False, "returned": False, "errorInfo": error_info}


def px(message):
    """PHPMailer with exceptions: send() throws PHPMailer\\PHPMailer\\Exception with this message."""
    return {"ok": False, "exception": PM_EXCEPTION, "message": message}


def py(exception, code=None, text=None, message=None):
    """smtplib: the exception's class, smtp_code and smtp_error (or str(e) for exceptions without a reply)."""
    e = {"ok": False, "exception": f"smtplib.{exception}" if exception.startswith("SMTP") else exception}
    if code is not None:
        e["code"] = code
    if text is not None:
        e["text"] = text
    if message is not None:
        e["str"] = message
    return e


def sw(exit_code, errors=None):
    """swaks: the exit code (and, when given, a pattern its error lines must match)."""
    e = {"exit": exit_code}
    if errors is not None:
        e["errors"] = errors
    return e


def expect(nodemailer, phpmailer, phpmailer_exceptions, smtplib, swaks):
    return {"nodemailer": nodemailer, "phpmailer": phpmailer, "phpmailer-exceptions": phpmailer_exceptions,
            "smtplib": smtplib, "swaks": swaks}


# What each client reports when the server refuses a step with a reply, from the reply itself. text is the
# reply after its code (the first line of a multi-line reply, matched as a prefix). PHPMailer shows the text
# without an enhanced status code of the form d.d.d or d.d.dd, as its SMTP class parses them.

MAIL_FAILED = r"^The following From address failed: app@example\.com : MAIL FROM command failed,"
RCPT_FAILED = r"^SMTP Error: The following recipients failed: "
DATA_FAILED = r"^SMTP Error: data not accepted\.SMTP server error: DATA command failed Detail: "
DATA_END_FAILED = r"^SMTP Error: data not accepted\.SMTP server error: DATA END command failed Detail: "


def _reply(code, text, multiline):
    """the expected reply as Nodemailer shows it (err.response), and as smtplib does (smtp_error)"""
    if multiline:
        return Re("^" + re.escape(f"{code}-{text}") + "\n"), Re("^" + re.escape(text) + "\n")
    return f"{code} {text}", text


def _php_text(text):
    return re.escape(re.sub(r"^\d\.\d\.\d{1,2} ", "", text))


def login_refused(code, text, multiline=False):
    nodemailer, smtplib_text = _reply(code, text, multiline)
    return expect(nm("EAUTH", code, nodemailer), pm(PM_CONNECT_FAILED), px(PM_AUTH),
                  py("SMTPAuthenticationError", code, smtplib_text), sw(28))


def greeting_refused(code, text):
    nodemailer, smtplib_text = _reply(code, text, False)
    return expect(nm("EPROTOCOL", code, nodemailer), pm(PM_CONNECT_FAILED), px(PM_CANNOT_CONNECT),
                  py("SMTPConnectError", code, smtplib_text), sw(21))


def refused_at_mail(code, text, multiline=False):
    nodemailer, smtplib_text = _reply(code, text, multiline)
    php = Re(MAIL_FAILED + _php_text(text))
    return expect(nm("EENVELOPE", code, nodemailer), pm(php), px(php),
                  py("SMTPSenderRefused", code, smtplib_text), sw(23))


def refused_at_rcpt(code, text, rcpt="rcpt@example.org", multiline=False):
    nodemailer, _ = _reply(code, text, multiline)
    php = Re(RCPT_FAILED + re.escape(rcpt + ": ") + _php_text(text))
    refused = Re(re.escape(f"'{rcpt}': [{code}, ") + "[\"']" + re.escape(text)) if multiline \
        else {rcpt: [code, text]}
    return expect(nm("EENVELOPE", code, nodemailer), pm(php), px(php),
                  dict(py("SMTPRecipientsRefused"), refused=refused), sw(24))


def refused_at_data(code, text):
    nodemailer, smtplib_text = _reply(code, text, False)
    return expect(nm("EENVELOPE", code, nodemailer), pm(Re(DATA_FAILED + _php_text(text))), px(PM_DATA),
                  py("SMTPDataError", code, smtplib_text), sw(25))


def refused_after_data(code, text, multiline=False):
    nodemailer, smtplib_text = _reply(code, text, multiline)
    return expect(nm("EMESSAGE", code, nodemailer), pm(Re(DATA_END_FAILED + _php_text(text))), px(PM_DATA),
                  py("SMTPDataError", code, smtplib_text), sw(26))


def accepted(**nodemailer):
    """Every client reports success (swaks: exit 0)."""
    return expect(dict(sent(), response=Re(r"^250 2\.0\.0 Ok: queued as <id>$"), **nodemailer),
                  dict(sent(), returned=True), dict(sent(), exception=None), sent(), sw(0))


CASES = []
GROUPS = []  # (title, introduction), in order
_group = [""]


def group(title, intro):
    GROUPS.append((title, " ".join(intro.split())))
    _group[0] = title


def case(**kw):
    CASES.append(Case(group=_group[0], **kw))


# One call per profile, in sections as docs/errors.md shows them.

# -- logging in ---------------------------------------------------------------------------------------------

group("Logging in",
      """The server refuses the credentials (AUTH), or the client sends without logging in.
      auth-535-wrong-password refuses every login, so the app fails with the credentials it is configured
      with. The provider profiles answer with the provider's own words; they accept one account (see each
      description), so a test can also show that the right credentials work.""")

case(profile="auth-535-wrong-password", title="Wrong user name or password (535)",
     symptom='"535 Authentication failed", "Invalid login: 535", "SMTP Error: Could not authenticate."',
     listener="submission", tls="starttls", auth=(APP[0], WRONG),
     note="PHPMailer without exceptions reports a refused login as SMTP connect() failed; the 535 is only in its "
          "debug output. The same goes for the provider logins below.",
     expect=login_refused(535, "5.7.8 Authentication credentials invalid"))

case(profile="auth-530-authentication-required", title="Authentication required (530)",
     symptom='"530 5.7.0 Authentication required", "The following From address failed"',
     expect=refused_at_mail(530, "5.7.0 Authentication required"))

case(profile="gmail-534-app-password-required", title="Gmail: application-specific password required (534-5.7.9)",
     symptom='"534-5.7.9 Application-specific password required"',
     listener="submission", tls="starttls", auth=(GMAIL[0], "my-google-password"),
     note="Use an app password (Google Account, Security, App passwords) or OAuth2, not the account's password.",
     expect=login_refused(534, "5.7.9 Application-specific password required. Learn more at", multiline=True))

case(profile="gmail-535-bad-credentials", title="Gmail: username and password not accepted (535-5.7.8)",
     symptom='"535-5.7.8 Username and Password not accepted", "Invalid login: 535-5.7.8"',
     listener="smtps", tls="implicit", auth=(GMAIL[0], "my-google-password"),
     expect=login_refused(535, "5.7.8 Username and Password not accepted. Learn more at", multiline=True))

case(profile="outlook-535-5.7.139-auth-blocked",
     title="Microsoft 365: the request did not meet the criteria to be authenticated (535 5.7.139)",
     symptom='"535 5.7.139 Authentication unsuccessful"', listener="submission", tls="starttls",
     auth=(M365[0], "my-m365-password"),
     expect=login_refused(535, "5.7.139 Authentication unsuccessful, the request did not meet the criteria to be "
                               "authenticated successfully. Contact your administrator. [MN2PR07CA0004.namprd07.prod."
                               "outlook.com 2024-08-13T18:27:55.030Z 08DCBB430284475F]"))

case(profile="outlook-535-5.7.3-auth-unsuccessful", title="Microsoft 365: authentication unsuccessful (535 5.7.3)",
     symptom='"535 5.7.3 Authentication unsuccessful"', listener="submission", tls="starttls",
     auth=(M365[0], "my-m365-password"),
     expect=login_refused(535, "5.7.3 Authentication unsuccessful [YQZPR01CA0021.CANPRD01.PROD.OUTLOOK.COM "
                               "2024-04-13T15:44:48.786Z 08DC5BA2C153C1D0]"))

# -- connecting -----------------------------------------------------------------------------------------------

group("Connecting",
      """The TCP connection, the greeting and the session itself: refused, dropped or silent connections,
      slow servers, too many connections.""")

case(profile="connect-timeout-blocked-port", title="Connection timed out (blocked port)",
     symptom='"Connection timed out", "ETIMEDOUT", "SMTP Error: Could not connect to SMTP host"', timeout=2,
     note="PHPMailer's ErrorInfo does not say the connection timed out; its debug output does.",
     expect=expect(
         nm("ETIMEDOUT", None, message="Connection timeout"),
         pm(PM_CONNECT_FAILED),
         px(PM_CANNOT_CONNECT),
         py("TimeoutError", message="timed out"),
         sw(2, Re(r"connect: timeout"))))

case(profile="connect-refused", title="Connection refused",
     symptom='"ECONNREFUSED", "Connection refused", "SMTP connect() failed"',
     note="PHPMailer reports a refused connection like every other connection failure; its debug output says "
          "Connection refused (111).",
     expect=expect(
         nm("ESOCKET", None, message="connect ECONNREFUSED 127.0.0.1:2525"),
         pm(PM_CONNECT_FAILED),
         px(PM_CANNOT_CONNECT),
         py("ConnectionRefusedError", message="[Errno 111] Connection refused"),
         sw(2, Re(r"Connection refused"))))

NO_GREETING = expect(
    nm("ETIMEDOUT", None, message="Greeting never received"),
    pm(PM_CONNECT_FAILED),
    px(PM_CANNOT_CONNECT),
    py("SMTPServerDisconnected", message="Connection unexpectedly closed: timed out"),
    sw(21, Re(r"Timeout \(2 secs\) waiting for server response")))

case(profile="greeting-never-received", title="Greeting never received",
     symptom='"Greeting never received", "timed out", "SMTP Error: Could not connect to SMTP host"', timeout=2,
     note="PHPMailer waits SMTP::$Timelimit (300 s by default) for each reply, whatever its Timeout says; the "
          "matrix sets both to 2 s. Its error then reads like a connection failure, with nothing in the debug "
          "output.",
     expect=NO_GREETING)

case(profile="slow-greeting", title="Slow greeting (15 s)",
     symptom='"Greeting never received" after a wait, or mail that takes 15 s to send', timeout=2,
     note="With default timeouts (Nodemailer 30 s, PHPMailer 300 s, swaks 30 s, smtplib none) the mail goes "
          "through after 15 s; the matrix uses 2 s timeouts to show the failure.",
     expect=NO_GREETING)

case(profile="slow-server", title="Slow server (1 s per reply)",
     symptom="sending takes seconds; web requests that send mail time out", timeout=5, stored=1,
     note="Every client succeeds, in six seconds or more: time the send in your app, or send from a queue.",
     expect={client: dict(e, seconds=Re(r"^([6-9]|[1-9]\d)\.")) for client, e in accepted().items()})

case(profile="rate-limit-421-too-many-connections", title="Too many connections (421)",
     symptom='"421 Too many connections from your IP"', hold_connection=True,
     note="PHPMailer reports a 421 greeting as a connection failure, without the reply even in its debug output.",
     expect=greeting_refused(421, "4.7.0 Too many connections from your IP, try again later"))

case(profile="server-421-try-again-later", title="Service not available, try again later (421 greeting)",
     symptom='"421 Service not available", "421 Try again later"',
     note="PHPMailer reports a 421 greeting as a connection failure, without the reply even in its debug output.",
     expect=greeting_refused(421, "4.3.2 Service not available, try again later"))

DATA_CLOSED = "SMTP Error: data not accepted.SMTP server error: DATA command failed"

case(profile="connection-reset-mid-data", title="Connection reset while sending the message",
     symptom='"ECONNRESET", "Connection reset by peer", "Broken pipe"',
     note="The clients have the 354 and send the message; the reset comes before its reply. PHPMailer and swaks "
          "do not say the connection was reset: PHPMailer reports DATA END command failed with an empty reply, "
          "swaks that the remote host closed the connection.",
     expect=expect(
         nm("ESOCKET", None, message="read ECONNRESET"),
         pm("SMTP Error: data not accepted.SMTP server error: DATA END command failed"),
         px(PM_DATA),
         py("SMTPServerDisconnected", message="Connection unexpectedly closed: [Errno 104] Connection reset by peer"),
         sw(6, Re(r"Remote host closed connection unexpectedly"))))

case(profile="connection-dropped-after-rcpt", title="Connection closed after the recipients",
     symptom='"Connection closed unexpectedly", "SMTPServerDisconnected"',
     expect=expect(
         nm("ECONNECTION", None, message="Connection closed unexpectedly"),
         pm(DATA_CLOSED),
         px(PM_DATA),
         py("SMTPServerDisconnected", message="Connection unexpectedly closed"),
         sw(6, Re(r"Remote host closed connection unexpectedly"))))

# -- TLS ----------------------------------------------------------------------------------------------------

group("TLS",
      """Handshakes that fail, certificates that do not verify (every client here verifies against the test
      CA, ca.pem), STARTTLS refused or missing, and the two port/mode mismatches behind most "wrong
      version number" and "greeting never received" reports.""")


def tls_failed(nodemailer, smtplib_exception, smtplib_message, swaks, php_exception=PM_CANNOT_CONNECT):
    """What the clients report when the TLS handshake fails (patterns on their messages)."""
    return expect(nm("ESOCKET", None, message=Re(nodemailer)), pm(PM_CONNECT_FAILED), px(php_exception),
                  py(smtplib_exception, message=Re(smtplib_message)), sw(29, Re(swaks)))


WRONG_VERSION = tls_failed(r"SSL routines:ssl3_get_record:wrong version number", "ssl.SSLError",
                           r"^\[SSL: WRONG_VERSION_NUMBER\] wrong version number", r"wrong version number")

case(profile="tls-wrong-version-number", title="TLS: wrong version number (plain text on the TLS port)",
     symptom='"SSL routines::wrong version number", "ssl3_get_record:wrong version number"',
     listener="smtps", tls="implicit", auth=APP,
     note="PHPMailer reports every implicit-TLS failure as Failed to connect to server: (0); the OpenSSL error "
          "is only in PHP's warnings.",
     expect=WRONG_VERSION)

case(profile="smtps-on-587", title="Implicit TLS client on port 587 (secure: true on 587)",
     symptom='"wrong version number" with secure: true / SMTPSecure "ssl" on port 587',
     listener="submission", tls="implicit", auth=APP,
     note="Set secure: false (Nodemailer), SMTPSecure = 'tls' (PHPMailer), smtplib.SMTP + starttls(), "
          "swaks --tls for port 587.",
     expect=WRONG_VERSION)

case(profile="starttls-on-465", title="STARTTLS client on port 465 (secure: false on 465)",
     symptom='"Greeting never received" or a timeout with secure: false / SMTPSecure "tls" on port 465',
     listener="smtps", tls="starttls", timeout=2, auth=APP,
     note="Nothing in any client's message points at TLS: it looks like a server that never greets. Set "
          "secure: true (Nodemailer), SMTPSecure = 'ssl' (PHPMailer), smtplib.SMTP_SSL, swaks --tls-on-connect "
          "for port 465.",
     expect=NO_GREETING)

case(profile="tls-handshake-failure", title="TLS handshake failure (alert 40)",
     symptom='"sslv3 alert handshake failure", "SSL handshake failed"', listener="smtps", tls="implicit", auth=APP,
     expect=tls_failed(r"sslv3 alert handshake failure.*SSL alert number 40", "ssl.SSLError",
                       r"^\[SSL: SSLV3_ALERT_HANDSHAKE_FAILURE\] sslv3 alert handshake failure",
                       r"sslv3 alert handshake failure"))

PHP_CRYPTO = (r"^SMTP Error: Could not connect to SMTP host\. Connection failed\. stream_socket_enable_crypto\(\): "
              r"SSL operation failed with code 1\. OpenSSL Error messages:\nerror:")

case(profile="tls-outdated-version", title="TLS: outdated protocol version (TLS 1.1 only)",
     symptom='"unsupported protocol", "legacy sigalg disallowed or unsupported", "tlsv1 alert protocol version"',
     listener="submission", tls="starttls", auth=APP,
     note="Node.js refuses TLS 1.1 (unsupported protocol); Debian's OpenSSL 3, which PHP, Python and swaks use, "
          "still negotiates it but refuses its MD5-SHA1 signatures (legacy sigalg disallowed or unsupported).",
     expect=tls_failed(r"ssl_choose_client_version:unsupported protocol", "ssl.SSLError",
                       r"legacy sigalg disallowed or unsupported", r"legacy sigalg disallowed or unsupported",
                       php_exception=Re(PHP_CRYPTO + r"0A00014D:SSL routines::legacy sigalg disallowed")))

case(profile="tls-certificate-expired", title="TLS: certificate has expired",
     symptom='"certificate has expired", "CERTIFICATE_VERIFY_FAILED"', listener="smtps", tls="implicit", auth=APP,
     note="PHPMailer (implicit TLS) and swaks do not say why the certificate failed verification.",
     expect=tls_failed(r"^certificate has expired$", "ssl.SSLCertVerificationError",
                       r"certificate verify failed: certificate has expired", r"certificate verify failed"))

case(profile="tls-certificate-wrong-host", title="TLS: certificate for another host name",
     symptom='"Hostname/IP does not match certificate\'s altnames", "Peer certificate CN did not match"',
     listener="submission", tls="starttls", auth=APP,
     note="swaks 20201014 checks the certificate's chain but not its name (--tls-verify): it sends the mail.",
     expect=dict(tls_failed(r"^Hostname/IP does not match certificate's altnames: IP: 127\.0\.0\.1 is not in the "
                            r"cert's list", "ssl.SSLCertVerificationError",
                            r"certificate verify failed: IP address mismatch, certificate is not valid for "
                            r"'127\.0\.0\.1'", r"",
                            php_exception="SMTP Error: Could not connect to SMTP host. Connection failed. "
                                          "stream_socket_enable_crypto(): Peer certificate subjectAltName did not "
                                          "match expected name `localhost'"),
                 swaks=dict(sw(0), stored=1)))

case(profile="tls-certificate-self-signed", title="TLS: self-signed certificate",
     symptom='"self-signed certificate", "self signed certificate in certificate chain"',
     listener="submission", tls="starttls", auth=APP,
     expect=tls_failed(r"^self-signed certificate$", "ssl.SSLCertVerificationError",
                       r"certificate verify failed: self-signed certificate", r"certificate verify failed",
                       php_exception=Re(PHP_CRYPTO + r"0A000086:SSL routines::certificate verify failed")))

case(profile="tls-certificate-untrusted", title="TLS: certificate from an untrusted CA",
     symptom='"unable to get local issuer certificate", "unable to verify the first certificate"',
     listener="smtps", tls="implicit", auth=APP,
     expect=tls_failed(r"^unable to verify the first certificate$", "ssl.SSLCertVerificationError",
                       r"certificate verify failed: unable to get local issuer certificate",
                       r"certificate verify failed"))

case(profile="starttls-454-not-available", title="STARTTLS refused (454 TLS not available)",
     symptom='"454 4.7.0 TLS not available due to local problem"', tls="starttls",
     expect=expect(
         nm("ETLS", 454, "454 4.7.0 TLS not available due to local problem"),
         pm(PM_CONNECT_FAILED),
         px("SMTP Error: Could not connect to SMTP host. STARTTLS command failed TLS not available due to local "
            "problem\r\n"),
         py("SMTPResponseException", 454, "4.7.0 TLS not available due to local problem"),
         sw(29)))

case(profile="starttls-not-offered", title="STARTTLS not offered",
     symptom='"STARTTLS extension not supported by server", "Can\'t upgrade to TLS"', tls="starttls",
     note="Nodemailer and PHPMailer send STARTTLS although EHLO did not offer it, and report the 502.",
     expect=expect(
         nm("ETLS", 502, "502 5.5.1 Error: command not implemented"),
         pm(PM_CONNECT_FAILED),
         px("SMTP Error: Could not connect to SMTP host. STARTTLS command failed Error: command not implemented\r\n"),
         py("SMTPNotSupportedError", message="STARTTLS extension not supported by server."),
         sw(29, Re(r"Host did not advertise STARTTLS"))))

# -- the envelope -----------------------------------------------------------------------------------------------

group("The envelope: senders and recipients",
      """MAIL FROM and RCPT TO refused, permanently (5xx) or for now (4xx).""")

case(profile="syntax-500-command-unrecognized", title="Command unrecognized (500)",
     symptom='"500 Syntax error, command unrecognized"',
     note="PHPMailer goes on after both EHLO and HELO failed and reports the server's 503 to MAIL FROM instead.",
     expect=dict(refused_at_mail(503, "5.5.1 Error: send HELO/EHLO first"),
                 nodemailer=nm("EPROTOCOL", 500, "500 5.5.2 Syntax error, command unrecognized"),
                 smtplib=py("SMTPHeloError", 500, "5.5.2 Syntax error, command unrecognized"), swaks=sw(22)))

case(profile="syntax-501-invalid-address", title="Bad sender address syntax (501)",
     symptom='"501 5.1.7 Bad sender address syntax", "501 Invalid address"',
     expect=refused_at_mail(501, "5.1.7 Bad sender address syntax"))

case(profile="mail-550-sender-rejected", title="Sender rejected (550)",
     symptom='"550 Sender rejected", "Sender address rejected"',
     expect=refused_at_mail(550, "5.7.1 Sender address rejected: Access denied"))

case(profile="mail-553-sender-not-allowed", title="Sender address not allowed (553)",
     symptom='"553 5.7.1 Sender address rejected: not owned by user", "553 Sender address not allowed"',
     listener="submission", tls="starttls", auth=APP,
     expect=refused_at_mail(553, "5.7.1 Sender address rejected: not owned by user app@example.com"))

case(profile="sender-471-rejected-reputation", title="Sender rejected for reputation (471)",
     symptom='"471 Sender address rejected"',
     expect=refused_at_mail(471, "4.7.1 Sender address rejected: poor IP reputation, try again later"))

case(profile="rcpt-550-user-unknown", title="User unknown (550 5.1.1)",
     symptom='"550 5.1.1 User unknown", "550 No such user here"',
     expect=refused_at_rcpt(550, "5.1.1 Recipient address rejected: User unknown"))

case(profile="rcpt-550-mailbox-unavailable", title="Mailbox unavailable (550)",
     symptom='"550 Requested action not taken: mailbox unavailable"',
     expect=refused_at_rcpt(550, "5.5.0 Requested action not taken: mailbox unavailable"))

case(profile="rcpt-550-relay-not-permitted", title="Relay not permitted (550)",
     symptom='"550 relay not permitted", "SMTP relay not permitted", "554 Relay access denied"',
     expect=refused_at_rcpt(550, "relay not permitted"))

case(profile="rcpt-452-too-many-recipients", title="Too many recipients (452)",
     symptom='"452 4.5.3 Too many recipients", or mail that reaches only some recipients',
     recipients=("one@example.org", "two@example.org", "three@example.org"), stored=1,
     note="Every client delivers to the first two recipients. Nodemailer and smtplib return success and list the "
          "third as rejected or refused; swaks exits 0; PHPMailer reports a failure although the message was "
          "sent to the others. Split large recipient lists into several messages.",
     expect=dict(refused_at_rcpt(452, "4.5.3 Error: too many recipients", rcpt="three@example.org"),
                 nodemailer=dict(accepted()["nodemailer"], rejected=["three@example.org"]),
                 smtplib=dict(sent(), refused={"three@example.org": [452, "4.5.3 Error: too many recipients"]}),
                 swaks=sw(0, Re(r"452 4\.5\.3 Error: too many recipients"))))

case(profile="mailbox-450-unavailable", title="Mailbox unavailable, try again (450)",
     symptom='"450 Requested mail action not taken: mailbox unavailable"',
     expect=refused_at_rcpt(450, "4.2.1 Requested mail action not taken: mailbox unavailable"))

case(profile="greylisting-450", title="Greylisted (450)", symptom='"450 4.2.0 Greylisted, try again later"',
     note="No client retries by itself: the app must queue the message and send it again after the delay.",
     expect=refused_at_rcpt(450, "4.2.0 <rcpt@example.org>: Recipient address rejected: Greylisted, try again in "
                                 "300 seconds"))

# -- the message ------------------------------------------------------------------------------------------------

group("The message",
      """The server refuses or loses the message after the client sent it.""")

case(profile="local-451-temporary-failure", title="Local error in processing (451)",
     symptom='"451 Requested action aborted: local error in processing"',
     note="PHPMailer with exceptions says only data not accepted; the reply is in ErrorInfo. The same goes for "
          "every refusal of a message below.",
     expect=refused_after_data(451, "4.3.0 Requested action aborted: local error in processing"))

case(profile="data-552-message-too-large", title="Message too large (552)",
     symptom='"552 5.3.4 Message size exceeds fixed maximum message size"', body_size=20000,
     note="smtplib declares SIZE= and is refused at MAIL FROM (SMTPSenderRefused); the others send the whole "
          "message first.",
     expect=dict(refused_after_data(552, "5.3.4 Error: message size exceeds fixed maximum message size (10240 "
                                         "octets)"),
                 smtplib=py("SMTPSenderRefused", 552, "5.3.4 Error: message size exceeds fixed maximum message size "
                                                      "(10240 octets)")))

case(profile="data-554-transaction-failed-blacklisted", title="Transaction failed: blocklisted (554)",
     symptom='"554 Transaction failed", "blocked using zen.spamhaus.org"',
     expect=refused_after_data(554, "5.7.1 Transaction failed: Client host [127.0.0.1] blocked using "
                                    "zen.spamhaus.org"))

case(profile="accept-and-drop", title="Accepted, then lost: emails never arrive",
     symptom='"emails never arrive", "no error but nothing received"', stored=0,
     note="Every client reports success; only checking that the message arrived (here: the admin socket's "
          "messages.list) shows the loss.",
     expect=accepted())

# -- providers --------------------------------------------------------------------------------------------------

group("Providers",
      """Replies of Gmail, Microsoft 365, Yahoo, Amazon SES, SendGrid and Mailgun, word for word from public
      reports; each profile's description cites its sources. The login refusals of Gmail and Microsoft 365
      are under Logging in.""")

case(profile="gmail-550-dmarc", title="Gmail: rejected by the domain's DMARC policy (550-5.7.26)",
     symptom='"550-5.7.26 Unauthenticated email from ... is not accepted due to domain\'s DMARC policy"',
     sender="app@domain.com", recipients=("someone@gmail.com",),
     expect=refused_after_data(550, "5.7.26 Unauthenticated email from domain.com is not accepted due to domain's",
                               multiline=True))

case(profile="gmail-421-rate-limited", title="Gmail: rate limited (421-4.7.28)",
     symptom='"421-4.7.28 Our system has detected an unusual rate of unsolicited mail"',
     recipients=("someone@gmail.com",),
     expect=refused_after_data(421, "4.7.28 [127.0.0.1           4] Our system has detected an unusual rate of",
                               multiline=True))

case(profile="gmail-550-user-unknown", title="Gmail: the account does not exist (550-5.1.1)",
     symptom='"550-5.1.1 The email account that you tried to reach does not exist"',
     recipients=("no.such.user@gmail.com",),
     expect=refused_at_rcpt(550, "5.1.1 The email account that you tried to reach does not exist. Please try",
                            rcpt="no.such.user@gmail.com", multiline=True))

case(profile="gmail-552-mailbox-full", title="Gmail: mailbox over quota (552-5.2.2)",
     symptom='"552-5.2.2 The email account that you tried to reach is over quota"',
     recipients=("full.mailbox@gmail.com",),
     expect=refused_at_rcpt(552, "5.2.2 The email account that you tried to reach is over quota. Please direct",
                            rcpt="full.mailbox@gmail.com", multiline=True))

case(profile="outlook-550-5.7.708-ip-denied", title="Microsoft 365: traffic not accepted from this IP (550 5.7.708)",
     symptom='"550 5.7.708 Service unavailable. Access denied, traffic not accepted from this IP"',
     recipients=("someone@contoso.com",),
     expect=refused_at_mail(550, "5.7.708 Service unavailable. Access denied, traffic not accepted from this IP. "
                                 "For more information please go to http://go.microsoft.com/fwlink/?LinkId=526653 "
                                 "AS(7230) [BM1PR01MB1076.INDPRD01.PROD.OUTLOOK.COM]"))

case(profile="outlook-451-4.7.500-server-busy", title="Microsoft 365: server busy (451 4.7.500)",
     symptom='"451 4.7.500 Server busy. Please try again later"', recipients=("someone@contoso.com",),
     expect=refused_at_rcpt(451, "4.7.500 Server busy. Please try again later from [127.0.0.1]. (S77714) "
                                 "[BL6PEPF0001AB50.namprd04.prod.outlook.com 2024-07-14T14:44:43.083Z "
                                 "08DCA36F759CD546]", rcpt="someone@contoso.com"))

case(profile="yahoo-421-tss04-deferred", title="Yahoo: temporarily deferred (421 4.7.0 [TSS04])",
     symptom='"421 4.7.0 [TSS04] Messages from ... temporarily deferred"', recipients=("someone@yahoo.com",),
     expect=refused_at_mail(421, "4.7.0 [TSS04] Messages from 127.0.0.1 temporarily deferred due to unexpected "
                                 "volume or user complaints - 4.16.55.1; see "
                                 "https://postmaster.yahooinc.com/error-codes"))

case(profile="ses-454-throttling", title="Amazon SES: maximum sending rate exceeded (454)",
     symptom='"454 Throttling failure: Maximum sending rate exceeded"',
     expect=refused_at_data(454, "Throttling failure: Maximum sending rate exceeded."))

case(profile="ses-554-address-not-verified", title="Amazon SES: email address is not verified (554)",
     symptom='"554 Message rejected: Email address is not verified"',
     expect=refused_after_data(554, "Message rejected: Email address is not verified. The following identities "
                                    "failed the check in region US-EAST-1: app@example.com"))

case(profile="sendgrid-550-sender-identity", title="SendGrid: from address is not a verified Sender Identity (550)",
     symptom='"550 The from address does not match a verified Sender Identity"',
     expect=refused_after_data(550, "The from address does not match a verified Sender Identity. Mail cannot be sent "
                                    "until this error is resolved. Visit https://sendgrid.com/docs/for-developers/"
                                    "sending-email/sender-identity/ to see the Sender Identity requirements"))

case(profile="mailgun-421-sandbox-not-allowed", title="Mailgun: sandbox domain not allowed to send (421)",
     symptom='"421 Domain ... is not allowed to send: Sandbox subdomains are for test purposes only"',
     expect=refused_at_data(421, "Domain app7957d1f9157248c0963145da35aa903b.mailgun.org is not allowed to send: "
                                 "Sandbox subdomains are for test purposes only. Please add your own domain or add "
                                 "the address to authorized recipients in Account Settings."))
