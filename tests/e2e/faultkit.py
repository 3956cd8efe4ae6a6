"""
Helpers for the fault-profile end-to-end tests (test_faults*.py): servers started with a profile, the four
real clients driven with one call each, and the fault lines of the server's transcript.

Test modules import the fixture and helpers with `from faultkit import ...` (pytest puts tests/e2e on
sys.path, as for conftest).
"""

import re
import smtplib
import time

import pytest

from harness import clients
from harness.clients import swaks_error_replies
from harness.profiles import reply_rule, rule, start_with_profile  # noqa: F401 (re-exported for the tests)

SENDER = "app@example.org"
RCPT = "user@example.org"


@pytest.fixture
def fault_server(server_factory, tmp_path):
    """Start a server with a fault profile: fault_server(profile, *extra_args, smtp=..., store=...).

    profile is a dict (the whole profile), a list (its rules) or a str (written as it is). The file is
    written to tmp_path and passed with --profile; the server object gets it as `.profile_path`.
    """

    def start(profile, *args, **kwargs):
        return start_with_profile(server_factory, tmp_path, profile, *args, **kwargs)

    return start


# -- the transcript -----------------------------------------------------------------------------------------

FAULT_RE = re.compile(r"^\S+ #(\d+) fault (.+?) at (\S+): (.*)$")


def fault_lines(srv):
    """Every 'fault WHY at STAGE: WHAT' line of the transcript, as (session, why, stage, what) tuples."""
    out = []
    for line in srv.log_lines():
        m = FAULT_RE.match(line)
        if m:
            out.append((int(m.group(1)), m.group(2), m.group(3), m.group(4)))
    return out


def faults_at(srv, stage):
    return [f for f in fault_lines(srv) if f[2] == stage]


def wait_for_fault(srv, why, stage, what=None, count=1, timeout=10.0):
    """Poll the transcript until `count` fault lines with this why and stage (and text, when given) appear."""
    pattern = rf"#\d+ fault {re.escape(why)} at {re.escape(stage)}: "
    if what is not None:
        pattern += re.escape(what)
    return srv.wait_for_log(pattern, timeout=timeout, count=count)


def replies_sent(srv, session=None):
    """The reply lines the server logged (optionally of one session only), in order."""
    out = []
    for line in srv.log_lines():
        m = re.match(r"^\S+ #(\d+) reply (.*)$", line)
        if m and (session is None or int(m.group(1)) == session):
            out.append(m.group(2))
    return out


def expect_log_count(srv, text, n, timeout=10.0):
    """Wait for `text` to appear n times in the transcript (lines may land after the client is done), then
    check that it is there exactly n times."""
    srv.wait_for_log(re.escape(text), count=n, timeout=timeout)
    count = srv.log().count(text)
    assert count == n, f"{text!r} {count} times in the transcript, expected {n}"


def close_reasons(srv):
    """The 'close REASON (in ..., out ...)' texts of the transcript, in order."""
    return re.findall(r"#\d+ close (.+?) \(in \d+ bytes", srv.log())


# -- the clients ------------------------------------------------------------------------------------------------


def raw_envelope(c, sender="a@example.org", rcpt="b@example.org"):
    """On a RawClient just connected: the greeting, EHLO, MAIL and RCPT, each accepted."""
    c.greet()
    c.cmd(f"MAIL FROM:<{sender}>", 250)
    c.cmd(f"RCPT TO:<{rcpt}>", 250)


def raw_message(c, body=b"Subject: raw\r\n\r\nx\r\n"):
    """raw_envelope, DATA (354) and the body with its final dot; the reply is left to the caller."""
    raw_envelope(c)
    c.cmd("DATA", 354)
    c.send(body + b".\r\n")


def nodemailer(srv, message=None, listener="smtp", messages=None, **transport):
    """Nodemailer's sendMail; the script's JSON result. Without a message, a small default one."""
    if message is None and messages is None:
        message = {}
    default = {"from": SENDER, "to": RCPT, "subject": "fault test", "text": "hello"}
    return clients.nodemailer(srv, None if message is None else {**default, **message},
                              None if messages is None else [{**default, **m} for m in messages],
                              listener=listener, tls_options=transport.pop("tls", None), **transport)


def nm_fail(result, code, response_code, command=None, response=None):
    """Check a failed Nodemailer result: err.code, err.responseCode, err.command and err.response."""
    assert result["ok"] is False, result
    assert result["code"] == code, result
    assert result["responseCode"] == response_code, result
    if command is not None:
        assert result["command"] == command, result
    if response is not None:
        assert result["response"] == response, result
    return result


def phpmailer(srv, messages=None, exceptions=True, listener="smtp", **options):
    """PHPMailer send() for each message (default: one small message); the list of per-message results."""
    if messages is None:
        messages = [{}]
    default = {"from": SENDER, "to": [RCPT], "subject": "fault test", "body": "hello"}
    return clients.phpmailer(srv, [{**default, **m} for m in messages], listener=listener, exceptions=exceptions,
                             **{"timeout": 20, **options})


def php_fail(result, exceptions, error_info):
    """Check a failed PHPMailer send: thrown (with exceptions) or returned false, and its ErrorInfo.

    error_info is the exact ErrorInfo (str) or a list of fragments it must contain. Returns ErrorInfo.
    """
    assert result["ok"] is False, result
    if exceptions:
        assert result["returned"] is None, f"send() returned instead of throwing: {result}"
        assert result["exception"]["class"] == "PHPMailer\\PHPMailer\\Exception", result
    else:
        assert result["returned"] is False and result["exception"] is None, result
    info = result["errorInfo"]
    if isinstance(error_info, str):
        assert info == error_info, result
        if exceptions:
            assert result["exception"]["message"] == error_info, result
    else:
        for fragment in error_info:
            assert fragment in info, f"{fragment!r} not in ErrorInfo {info!r}"
    return info


def swaks(srv, *args, sender=SENDER, to=RCPT):
    """swaks against the smtp listener; CompletedProcess (exit code, transcript on stdout)."""
    return clients.swaks(srv, "--from", sender, "--to", to, *args)


def smtplib_client(srv, listener="smtp", timeout=20, ehlo="smtplib.test.example", source=None):
    """An smtplib.SMTP connected to the listener (from the loopback address `source`, e.g. "127.0.0.2",
    when given), EHLO'd as `ehlo` (None: not yet)."""
    client = clients.smtplib_client(srv, listener, timeout=timeout, local_hostname="smtplib.test.example",
                                    source=source)
    if ehlo:
        client.ehlo(ehlo)
    return client


def smtplib_send(srv, sender=SENDER, rcpts=(RCPT,), msg=b"Subject: fault test\r\n\r\nhello\r\n", **kw):
    """One sendmail over a fresh connection (EHLO and HELO as sendmail does them): the refused-recipients
    dict, or the exception raised."""
    try:
        with smtplib_client(srv, ehlo=None, **kw) as client:
            return client.sendmail(sender, list(rcpts), msg)
    except smtplib.SMTPException as e:
        return e


# -- every client at once ------------------------------------------------------------------------------------

OK = "ok"  # an expectation: the client reports success


def check_nodemailer(srv, expect, sender=SENDER, rcpts=(RCPT,), message=None, **transport):
    """Send with Nodemailer (message: more sendMail options) and check the fields of its result named in
    expect ({"code": ..., ...}), or that it succeeded (OK)."""
    r = nodemailer(srv, {"from": sender, "to": list(rcpts), **(message or {})}, **transport)
    for key, value in ({"ok": True} if expect == OK else expect).items():
        assert r.get(key) == value, f"Nodemailer {key} is {r.get(key)!r}, expected {value!r}: {r}"
    return r


def check_phpmailer(srv, expect, sender=SENDER, rcpts=(RCPT,), **options):
    """Send with PHPMailer, with exceptions and without. expect is OK, or (exception message or None,
    ErrorInfo as exact text or fragments[, ErrorInfo without exceptions when it differs]). Returns the two
    results."""
    results = []
    for exceptions in (True, False):
        (r,) = phpmailer(srv, [{"from": sender, "to": list(rcpts)}], exceptions=exceptions, **options)["results"]
        if expect == OK:
            assert r["ok"] is True and r["errorInfo"] == "", r
        else:
            message, error_info = expect[:2]
            php_fail(r, exceptions, error_info if exceptions or len(expect) < 3 else expect[2])
            if exceptions and message is not None:
                assert r["exception"]["message"] == message, r
        results.append(r)
    return results


def check_swaks(srv, expect, *args, sender=SENDER, rcpts=(RCPT,)):
    """Send with swaks; expect is (exit code, the error replies it shows, or None not to look)."""
    code, errors = expect
    p = swaks(srv, *args, sender=sender, to=",".join(rcpts))
    assert p.returncode == code, f"swaks exited {p.returncode}, expected {code}:\n{p.stdout}{p.stderr}"
    if errors is not None:
        assert swaks_error_replies(p) == errors, p.stdout
    return p


def check_smtplib(srv, expect, sender=SENDER, rcpts=(RCPT,), **kw):
    """sendmail with smtplib (kw: smtplib_send's msg, source...); expect is what it returns (the refused
    recipients), or (exception class, smtp_code, smtp_error), or (SMTPRecipientsRefused, its recipients)."""
    got = smtplib_send(srv, sender, rcpts, **kw)
    if isinstance(expect, tuple):
        assert isinstance(got, expect[0]), f"smtplib: {got!r}, expected {expect[0].__name__}"
        if expect[0] is smtplib.SMTPRecipientsRefused:
            assert got.recipients == expect[1], got.recipients
        elif len(expect) > 1:
            assert (got.smtp_code, got.smtp_error) == expect[1:], repr(got)
    else:
        assert got == expect, got
    return got


def check_clients(srv, nodemailer=None, phpmailer=None, swaks=None, smtplib=None, sender=SENDER, rcpts=(RCPT,)):
    """Send one message with each client given an expectation, and check what each reports."""
    out = {}
    if nodemailer is not None:
        out["nodemailer"] = check_nodemailer(srv, nodemailer, sender, rcpts)
    if phpmailer is not None:
        out["phpmailer"] = check_phpmailer(srv, phpmailer, sender, rcpts)
    if swaks is not None:
        out["swaks"] = check_swaks(srv, swaks, sender=sender, rcpts=rcpts)
    if smtplib is not None:
        out["smtplib"] = check_smtplib(srv, smtplib, sender, rcpts)
    return out


def elapsed(fn, *args, **kwargs):
    """(seconds taken, value) of one call."""
    t0 = time.monotonic()
    value = fn(*args, **kwargs)
    return time.monotonic() - t0, value
