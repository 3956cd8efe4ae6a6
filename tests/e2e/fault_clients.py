"""
Real clients aimed at a server that runs a fault profile, for test_conn_faults.py and test_tls_faults.py.

Each runner sends one small message through one client (Nodemailer, PHPMailer, swaks or smtplib) to one
listener, plain, with STARTTLS or with implicit TLS, and returns what the client itself reported, with how
long it took. A client that never returns (some do not bound a TLS handshake) is killed after its bound and
reported as HUNG. `side_by_side` runs several at once, so that tests of timeouts wait once, not once per
client.
"""

import concurrent.futures
import json
import smtplib
import ssl
import subprocess
import time

from conftest import SWAKS, ca_file, run_nodemailer, run_phpmailer

SENDER = "app@example.org"
RCPT = "rcpt@example.org"
USER, PASSWORD = "app@example.org", "secret"  # smtps requires AUTH; with no --user any login works

HUNG = "hung"  # the client had not returned when its bound ran out (and was killed)


def start_with_profile(server_factory, tmp_path, profile, *args):
    """A server running the profile (a dict, written to tmp_path as JSON)."""
    path = tmp_path / f"profile{len(list(tmp_path.glob('profile*.json')))}.json"
    path.write_text(json.dumps(profile, indent=1))
    return server_factory("--profile", str(path), *args)


def address(srv, listener):
    entry = srv.listener(listener)
    return entry["host"], entry["port"]


def ca_pem():
    with open(ca_file()) as f:
        return f.read()


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
    host, port = address(srv, listener)
    options = {"connectionTimeout": 10000, "greetingTimeout": 10000, "socketTimeout": 10000}
    if mode == "starttls":
        options.update(ignoreTLS=False, requireTLS=True, tls={"ca": ca_pem()})
    elif mode == "implicit":
        options.update(secure=True, ignoreTLS=False, tls={"ca": ca_pem()}, auth={"user": USER, "pass": PASSWORD})
    for key, value in transport.items():
        if key == "tls":
            options["tls"] = dict(options.get("tls", {}), **value)
        else:
            options[key] = value
    message = {"from": SENDER, "to": RCPT, "subject": "fault test", "text": "Hello from nodemailer.\n"}
    return run_nodemailer({"host": host, "port": port, "transport": options, "message": message}, timeout=bound)


# -- PHPMailer ---------------------------------------------------------------------------------------------------


def phpmailer(srv, listener="smtp", mode=None, bound=30, **options):
    """phpmailer-send.php with exceptions on and debug level 3 (connection errors); its one result, with
    PHPMailer's transcript under "debug"."""
    host, port = address(srv, listener)
    payload = {"host": host, "port": port, "exceptions": True, "debugLevel": 3, "timeout": 10,
               "messages": [{"from": SENDER, "to": [RCPT], "subject": "fault test", "body": "Hello from PHP.\n"}]}
    if mode == "starttls":
        payload.update(secure="tls", ssl={"cafile": ca_file()})
    elif mode == "implicit":
        payload.update(secure="ssl", ssl={"cafile": ca_file()}, auth={"user": USER, "password": PASSWORD})
    for key, value in options.items():
        if key == "ssl":
            payload["ssl"] = dict(payload.get("ssl", {}), **value)
        else:
            payload[key] = value
    out = run_phpmailer(payload, timeout=bound)
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
    """Debian's swaks; CompletedProcess (its transcript is on stdout, its errors on stderr)."""
    host, port = address(srv, listener)
    argv = [SWAKS, "--server", host, "--port", str(port), "--timeout", str(timeout), "--from", SENDER,
            "--to", RCPT, "--helo", "swaks.test.example"]
    if mode == "starttls":
        argv.append("--tls")
    elif mode == "implicit":
        argv += ["--tlsc", "--auth", "PLAIN", "--auth-user", USER, "--auth-password", PASSWORD]
    argv += list(args)
    return subprocess.run(argv, capture_output=True, text=True, errors="replace", timeout=bound,
                          stdin=subprocess.DEVNULL)


# -- smtplib -----------------------------------------------------------------------------------------------------


def tls_context(maximum=None):
    ctx = ssl.create_default_context(cafile=ca_file())
    if maximum is not None:
        ctx.maximum_version = maximum
    return ctx


def smtplib_send(srv, listener="smtp", mode=None, timeout=10, context=None):
    """Connect (STARTTLS or implicit TLS and a login as asked), send one message; the TLS version used."""
    host, port = address(srv, listener)
    context = context or tls_context()
    msg = f"From: <{SENDER}>\r\nTo: <{RCPT}>\r\nSubject: fault test\r\n\r\nHello from smtplib.\r\n"
    if mode == "implicit":
        client = smtplib.SMTP_SSL(host, port, timeout=timeout, context=context)
    else:
        client = smtplib.SMTP(host, port, timeout=timeout)
    with client:
        client.ehlo("smtplib.test.example")
        if mode == "starttls":
            client.starttls(context=context)
            client.ehlo("smtplib.test.example")
        if mode == "implicit":
            client.login(USER, PASSWORD)
        refused = client.sendmail(SENDER, [RCPT], msg)
        assert refused == {}, refused
        return client.sock.version() if mode else None
