"""One runner per real client (Nodemailer, PHPMailer, swaks, smtplib), each aimed at a listener of a Server
with `listener=` and started in a TLS mode with `tls=`: None (plain), "starttls" or "implicit". Clients that
use TLS verify the server against the suite CA. Each runner returns what the client itself reported; the tests
decide what it must be.

The external clients live in tests/clients (nodemailer-send.js, phpmailer-send.php: a JSON payload on stdin,
a JSON result on stdout); a client that is not installed skips the test.
"""

import json
import os
import re
import shutil
import smtplib
import ssl
import subprocess
from pathlib import Path

import pytest

from harness.env import CLIENT_TIMEOUT, CLIENTS_DIR, IO_TIMEOUT
from harness.pki import ca_file, ca_pem
from harness.server import address

TLS_MODES = (None, "starttls", "implicit")


def _run_client(argv, payload, cwd, timeout):
    """Run a client script with the JSON payload on stdin (bounded); the JSON object on its last line."""
    proc = subprocess.run(
        argv,
        input=json.dumps(payload).encode("utf-8"),
        capture_output=True,
        timeout=timeout,
        cwd=cwd,
    )
    stdout = proc.stdout.decode("utf-8", "replace")
    stderr = proc.stderr.decode("utf-8", "replace")
    assert proc.returncode == 0, f"{argv[0]} {argv[1]} exited {proc.returncode}\nstdout: {stdout}\nstderr: {stderr}"
    lines = [l for l in stdout.splitlines() if l.strip()]
    assert lines, f"{argv[1]} printed nothing; stderr: {stderr}"
    try:
        return json.loads(lines[-1])
    except ValueError:
        raise AssertionError(f"{argv[1]} printed no JSON result: {stdout!r}\nstderr: {stderr}")


def run_nodemailer(payload, timeout=CLIENT_TIMEOUT):
    """Run tests/clients/nodemailer-send.js with the JSON payload; its parsed JSON result."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    if not (CLIENTS_DIR / "node_modules" / "nodemailer").is_dir():
        pytest.skip("nodemailer is not installed in tests/clients/node_modules (npm ci)")
    return _run_client([node, "nodemailer-send.js"], payload, CLIENTS_DIR, timeout)


PHPMAILER_AUTOLOAD = Path("/usr/share/php/libphp-phpmailer/autoload.php")


def run_phpmailer(payload, timeout=CLIENT_TIMEOUT):
    """Run tests/clients/phpmailer-send.php with the JSON payload; its parsed JSON result."""
    php = shutil.which("php")
    if php is None or not PHPMAILER_AUTOLOAD.exists():
        pytest.skip("php or Debian's libphp-phpmailer is not installed")
    return _run_client([php, "phpmailer-send.php"], payload, CLIENTS_DIR, timeout)


SWAKS = "/usr/bin/swaks"


def _tls_mode(tls):
    assert tls in TLS_MODES, f"tls is one of {TLS_MODES}, not {tls!r}"
    return tls


# -- Nodemailer ----------------------------------------------------------------------------------------------


def nodemailer_payload(srv, message=None, messages=None, listener="smtp", tls=None, host=None, tls_options=None,
                       **transport):
    """The JSON payload of nodemailer-send.js: createTransport options and one message (or several).

    tls "starttls" requires STARTTLS (requireTLS), "implicit" connects with TLS (secure); both trust the suite
    CA. tls_options is Nodemailer's own `tls` option (merged with the CA); transport adds to or overrides the
    other createTransport options.
    """
    mode = _tls_mode(tls)
    options = {}
    if mode is not None:
        options = {"secure": mode == "implicit", "ignoreTLS": False, "requireTLS": mode == "starttls",
                   "tls": {"ca": ca_pem()}}
    if tls_options is not None:
        options["tls"] = {**options.get("tls", {}), **tls_options}
    lhost, port = address(srv, listener)
    payload = {"host": host or lhost, "port": port, "transport": {**options, **transport}}
    if message is not None:
        payload["message"] = message
    if messages is not None:
        payload["messages"] = messages
    return payload


def nodemailer(srv, message=None, messages=None, listener="smtp", tls=None, host=None, tls_options=None,
               bound=CLIENT_TIMEOUT, **transport):
    """Nodemailer's sendMail (nodemailer_payload's arguments); the script's JSON result. bound is the process'
    time limit."""
    payload = nodemailer_payload(srv, message, messages, listener, tls, host, tls_options, **transport)
    return run_nodemailer(payload, bound)


# -- PHPMailer ---------------------------------------------------------------------------------------------------


def phpmailer(srv, messages, listener="smtp", tls=None, host=None, bound=CLIENT_TIMEOUT, **options):
    """PHPMailer send() for each message; phpmailer-send.php's JSON output ({"results": [...], "debug": [...]}).

    tls sets SMTPSecure ("tls" for STARTTLS, "ssl" for implicit TLS) and trusts the suite CA. options add to or
    override the payload's keys (exceptions, auth, timeout, debugLevel, ...; an "ssl" dict is merged). bound is
    the process' time limit.
    """
    mode = _tls_mode(tls)
    lhost, port = address(srv, listener)
    payload = {"host": host or lhost, "port": port, "messages": messages}
    if mode is not None:
        payload.update(secure="ssl" if mode == "implicit" else "tls", ssl={"cafile": ca_file()})
    if "ssl" in options:
        options = {**options, "ssl": {**payload.get("ssl", {}), **options["ssl"]}}
    return run_phpmailer({**payload, **options}, bound)


# -- swaks -------------------------------------------------------------------------------------------------------


def swaks(srv, *args, listener="smtp", tls=None, verify=True, host=None, timeout=20, bound=CLIENT_TIMEOUT):
    """Debian's swaks to a listener, its --timeout set to timeout; CompletedProcess with text output (swaks'
    transcript is on stdout, its own errors on stderr). tls: --tls (STARTTLS) or --tls-on-connect, with
    --tls-verify against the suite CA unless verify is false. bound is the process' own time limit."""
    mode = _tls_mode(tls)
    if not os.path.exists(SWAKS):
        pytest.skip("swaks is not installed")
    lhost, port = address(srv, listener)
    argv = [SWAKS, "--server", host or lhost, "--port", str(port), "--timeout", f"{timeout:g}"]
    if mode is not None:
        argv.append("--tls-on-connect" if mode == "implicit" else "--tls")
        if verify:
            argv += ["--tls-verify", "--tls-ca-path", ca_file()]
    return subprocess.run(argv + list(args), capture_output=True, text=True, errors="replace", timeout=bound,
                          stdin=subprocess.DEVNULL)


def run_swaks(server, *args, timeout=CLIENT_TIMEOUT):
    """swaks against the server's SMTP listener, plain (swaks(server, *args) with the process bounded)."""
    return swaks(server, *args, bound=timeout)


def swaks_replies(stdout):
    """Server replies as swaks shows them: '<-  ' and '<** ' in plain text, '<~  ' and '<~* ' over TLS."""
    return re.findall(r"^<(?:-|\*\*|~|~\*) +(\d{3}(?:[ -].*)?)$", stdout, re.M)


def swaks_error_replies(proc):
    """The server replies swaks marks as errors ('<** 550 ...'), in order."""
    return re.findall(r"^<\*\* +(.*)$", proc.stdout, re.M)


def swaks_errors(proc):
    """swaks' own error lines ('*** ...', on stdout or stderr), without the marker."""
    return re.findall(r"^ ?\*\*\* (.*)$", proc.stdout + proc.stderr, re.M)


# -- smtplib -----------------------------------------------------------------------------------------------------


def tls_context(maximum=None):
    """Python's default client context (CERT_REQUIRED, check_hostname) trusting the suite CA only."""
    ctx = ssl.create_default_context(cafile=ca_file())
    if maximum is not None:
        ctx.maximum_version = maximum
    return ctx


def smtplib_client(srv, listener="smtp", tls=None, host=None, context=None, timeout=IO_TIMEOUT,
                   local_hostname=None, source=None):
    """An smtplib client connected to a listener (from the loopback address `source` when given).

    tls "implicit" connects with SMTP_SSL; "starttls" runs starttls() (which sends EHLO first when none was
    sent). context defaults to tls_context(). Nothing else is sent: EHLO, login and the mail are the caller's.
    """
    mode = _tls_mode(tls)
    lhost, port = address(srv, listener)
    kw = {"local_hostname": local_hostname, "timeout": timeout, "source_address": (source, 0) if source else None}
    if mode == "implicit":
        client = smtplib.SMTP_SSL(host or lhost, port, context=context or tls_context(), **kw)
    else:
        client = smtplib.SMTP(host or lhost, port, **kw)
    if mode == "starttls":
        try:
            client.starttls(context=context or tls_context())
        except BaseException:
            client.close()
            raise
    return client
