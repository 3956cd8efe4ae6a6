"""
Real clients aimed at a server that runs a fault profile, for test_conn_faults.py and test_tls_faults.py.

Each runner sends one small message through one client (Nodemailer, PHPMailer, swaks or smtplib) to one
listener, plain, with STARTTLS or with implicit TLS, and returns what the client itself reported, with how
long it took. A client that never returns (some do not bound a TLS handshake) is killed after its bound and
reported as HUNG. `side_by_side` runs several at once, so that tests of timeouts wait once, not once per
client.
"""

import concurrent.futures
import subprocess
import time

from harness import clients
from harness.clients import tls_context  # noqa: F401 (re-exported for the tests)
from harness.profiles import start_with_profile  # noqa: F401 (re-exported for the tests)
from harness.server import address  # noqa: F401 (re-exported for the tests)

SENDER = "app@example.org"
RCPT = "rcpt@example.org"
USER, PASSWORD = "app@example.org", "secret"  # smtps requires AUTH; with no --user any login works

HUNG = "hung"  # the client had not returned when its bound ran out (and was killed)


class Ran:
    """The outcome of one client run: its value or the exception it raised, and the time it took."""

    def __init__(self, elapsed, value=None, error=None):
        self.elapsed = elapsed
        self.value = value
        self.error = error

    @property
    def hung(self):
        return self.value == HUNG

    def __repr__(self):
        what = f"error={self.error!r}" if self.error is not None else f"value={self.value!r}"
        return f"Ran({self.elapsed:.2f}s, {what})"


def timed(fn, *args, **kwargs):
    start = time.monotonic()
    try:
        value = fn(*args, **kwargs)
    except subprocess.TimeoutExpired:
        return Ran(time.monotonic() - start, HUNG)
    except Exception as e:  # the client's own error is what the test looks at
        return Ran(time.monotonic() - start, error=e)
    return Ran(time.monotonic() - start, value)


def side_by_side(**calls):
    """Run the zero-argument callables at once; {name: Ran}. Each one is bounded by its own timeouts."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(calls)) as pool:
        futures = {name: pool.submit(timed, fn) for name, fn in calls.items()}
        return {name: f.result() for name, f in futures.items()}


# -- Nodemailer ----------------------------------------------------------------------------------------------


def nodemailer(srv, listener="smtp", mode=None, bound=30, **transport):
    """nodemailer-send.js; mode None (plain), "starttls" (requireTLS) or "implicit". Its JSON result."""
    options = {"connectionTimeout": 10000, "greetingTimeout": 10000, "socketTimeout": 10000}
    if mode == "implicit":
        options["auth"] = {"user": USER, "pass": PASSWORD}
    message = {"from": SENDER, "to": RCPT, "subject": "fault test", "text": "Hello from nodemailer.\n"}
    tls_options = transport.pop("tls", None)
    return clients.nodemailer(srv, message, listener=listener, tls=mode, bound=bound, tls_options=tls_options,
                              **{**options, **transport})


# -- PHPMailer ---------------------------------------------------------------------------------------------------


def phpmailer(srv, listener="smtp", mode=None, bound=30, **options):
    """phpmailer-send.php with exceptions on and debug level 3 (connection errors); its one result, with
    PHPMailer's transcript under "debug"."""
    payload = {"exceptions": True, "debugLevel": 3, "timeout": 10}
    if mode == "implicit":
        payload["auth"] = {"user": USER, "password": PASSWORD}
    out = clients.phpmailer(srv, [{"from": SENDER, "to": [RCPT], "subject": "fault test", "body": "Hello from PHP.\n"}],
                            listener=listener, tls=mode, bound=bound, **{**payload, **options})
    (result,) = out["results"]
    result["debug"] = out["debug"]
    return result


def php_text(result):
    """Everything PHPMailer said about a failure, as one string (its exception, ErrorInfo, transcript)."""
    parts = [result["errorInfo"]] + result["debug"]
    if result["exception"]:
        parts.insert(0, result["exception"]["message"])
    return "\n".join(parts)


# -- swaks -------------------------------------------------------------------------------------------------------


def swaks(srv, *args, listener="smtp", mode=None, timeout=10, bound=30):
    """Debian's swaks (TLS without verification); CompletedProcess (its transcript is on stdout, its errors on
    stderr)."""
    argv = ["--from", SENDER, "--to", RCPT, "--helo", "swaks.test.example"]
    if mode == "implicit":
        argv += ["--auth", "PLAIN", "--auth-user", USER, "--auth-password", PASSWORD]
    return clients.swaks(srv, *argv, *args, listener=listener, tls=mode, verify=False, timeout=timeout, bound=bound)


# -- smtplib -----------------------------------------------------------------------------------------------------


def smtplib_send(srv, listener="smtp", mode=None, timeout=10, context=None):
    """Connect (STARTTLS or implicit TLS and a login as asked), send one message; the TLS version used."""
    msg = f"From: <{SENDER}>\r\nTo: <{RCPT}>\r\nSubject: fault test\r\n\r\nHello from smtplib.\r\n"
    with clients.smtplib_client(srv, listener, tls="implicit" if mode == "implicit" else None, context=context,
                                timeout=timeout) as client:
        client.ehlo("smtplib.test.example")
        if mode == "starttls":
            client.starttls(context=context or tls_context())
            client.ehlo("smtplib.test.example")
        if mode == "implicit":
            client.login(USER, PASSWORD)
        refused = client.sendmail(SENDER, [RCPT], msg)
        assert refused == {}, refused
        return client.sock.version() if mode else None
