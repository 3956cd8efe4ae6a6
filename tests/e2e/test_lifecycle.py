"""Process lifecycle: command line, start-up errors, signals and the drain period, logs."""

import json
import re
import signal
import smtplib
import socket
import time

import pytest

from conftest import make_message, poll, queued_id, run_binary, transaction

# -- command line ---------------------------------------------------------------------------------------------


def test_help():
    proc = run_binary(["--help"])
    assert proc.returncode == 0
    assert proc.stdout.startswith("Usage: smtpfault [OPTIONS] ")
    for option in ("--smtp", "--submission", "--smtps", "--ports-file", "--certs-dir", "--cert", "--key", "--no-tls",
                   "--user", "--profile", "--no-magic", "--hostname", "--max-message-size", "--max-recipients",
                   "--max-errors", "--idle-timeout", "--store-max-messages", "--store-max-bytes", "--store-dir",
                   "--drain-timeout", "--log-format", "--log-level", "--quiet", "--help", "--version"):
        assert re.search(rf"^\s+(-\w, )?{option}\b", proc.stdout, re.M), f"--help does not describe {option}"
    assert proc.stderr == ""
    assert run_binary(["-h"]).stdout == proc.stdout


def test_version():
    proc = run_binary(["--version"])
    assert proc.returncode == 0
    # The project's version, then the commit in a git checkout (+g1234567890, -dirty with local changes).
    assert re.fullmatch(r"smtpfault \d+\.\d+\.\d+(\+[0-9a-z.-]+)? \(libuv \S+, wolfSSL \S+, cJSON \S+\)\n",
                        proc.stdout), proc.stdout
    assert proc.stderr == ""
    assert run_binary(["-V"]).stdout == proc.stdout


@pytest.mark.parametrize("args, error", [
    (["--bogus"], "smtpfault: unknown option '--bogus'"),
    (["-x"], "smtpfault: unknown option '-x'"),
    (["--smtp"], "smtpfault: option '--smtp' needs a value"),
    (["--smtp", "nonsense"], "smtpfault: --smtp: 'nonsense' is not HOST:PORT, [IPV6]:PORT or off"),
    (["--smtp", "127.0.0.1:70000"], "smtpfault: --smtp: '70000' is not a port number (0-65535)"),
    (["--max-recipients", "99"], "smtpfault: --max-recipients: '99' is not a number from 100 to 1000000"),
    (["--max-message-size", "12X"], "smtpfault: --max-message-size: '12X' is not a number from 1024 to"),
    (["--log-format", "xml"], "smtpfault: --log-format: 'xml' is not text or json"),
    (["--hostname", "two words"], "smtpfault: --hostname: 'two words' is not a host name"),
    (["extra"], "smtpfault: unknown subcommand 'extra'"),
    (["--no-tls", "extra"], "smtpfault: unexpected argument 'extra' (the subcommands come first"),
])
def test_bad_flag(args, error):
    proc = run_binary(args)
    assert proc.returncode == 2, proc
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    # One line naming the problem; at most a pointer to --help after it, never the whole usage text.
    assert lines and lines[0].startswith(error), proc.stderr
    assert len(lines) <= 2, proc.stderr
    assert lines[1:] in ([], ["Try 'smtpfault --help' for more information."]), proc.stderr


@pytest.mark.parametrize("which", ["smtp", "submission"])
def test_address_in_use(tmp_path, which):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        ports_file = tmp_path / "ports.json"
        listeners = (["--smtp", f"127.0.0.1:{port}"] if which == "smtp"
                     else ["--smtp", "127.0.0.1:0", "--submission", f"127.0.0.1:{port}"])
        proc = run_binary([*listeners, "--ports-file", str(ports_file)], timeout=30)
    assert proc.returncode != 0
    assert proc.returncode == 1, proc
    errors = [l for l in proc.stderr.splitlines() if f"127.0.0.1:{port}" in l]
    assert errors, f"no error naming 127.0.0.1:{port}:\n{proc.stderr}"
    assert "address already in use" in errors[0].lower(), errors[0]
    assert not ports_file.exists(), "ports file written although nothing listens"


def test_every_listener_off(tmp_path):
    proc = run_binary(["--smtp", "off", "--submission", "off", "--smtps", "off", "--ports-file",
                       str(tmp_path / "ports.json")], timeout=30)
    assert proc.returncode == 1, proc
    assert "every listener is off" in proc.stderr
    assert not (tmp_path / "ports.json").exists()


def test_store_dir_not_writable(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    proc = run_binary(["--smtp", "127.0.0.1:0", "--store-dir", str(blocker / "sub")], timeout=30)
    assert proc.returncode == 1, proc
    assert f"--store-dir {blocker / 'sub'}" in proc.stderr


# -- signals ----------------------------------------------------------------------------------------------------


def test_sigterm_idle_session_gets_421(server):
    with server.connect() as c:
        c.greet()
        c.cmd("NOOP", 250)
        server.signal(signal.SIGTERM)
        r = c.expect(421)
        assert r.text == "4.3.2 localhost Service shutting down, closing connection"
        assert c.read_until_closed() == b""
    assert server.wait() == 0
    assert "received SIGTERM: stopping" in server.log()
    assert re.search(r"#1 close server shutdown", server.log())


def test_sigint_stops_cleanly(server):
    with server.smtp(helo="int.example") as client:
        assert client.sendmail("a@example.org", ["b@example.org"], make_message("before sigint", "x")) == {}
    server.signal(signal.SIGINT)
    assert server.wait() == 0
    assert "received SIGINT" in server.log()
    assert re.search(r"stopped: 1 messages accepted, 0 evicted", server.log())


def test_sigterm_during_data_transfer_completes_within_drain(server_factory):
    srv = server_factory("--drain-timeout", "20")
    body = make_message("in flight", "first half\r\n" * 100)
    with srv.connect() as c:
        c.greet()
        c.cmd("MAIL FROM:<inflight@example.org>", 250)
        c.cmd("RCPT TO:<b@example.org>", 250)
        c.cmd("DATA", 354)
        c.send(body[:500])
        srv.signal(signal.SIGTERM)
        srv.wait_for_log(r"received SIGTERM")
        # The listener is closed at once: new clients are refused while the transfer goes on.
        def refused():
            try:
                socket.create_connection(srv.address, timeout=5).close()
                return False
            except ConnectionRefusedError:
                return True
        poll(refused, 10, message="the listener to close")
        c.send(body[500:] + b".\r\n")
        r = c.expect(250)
        msg_id = queued_id(r.text)
        # The transaction is over: the session is shut down now.
        c.expect(421, "4.3.2")
        assert c.read_until_closed() == b""
    assert srv.wait() == 0
    (m,) = srv.messages()
    assert m.id == msg_id and m.raw == body
    assert "drain period over" not in srv.log()


def test_drain_timeout_cuts_a_stalled_transfer(server_factory):
    srv = server_factory("--drain-timeout", "1")
    with srv.connect(timeout=15) as c:
        c.greet()
        c.cmd("MAIL FROM:<stalled@example.org>", 250)
        c.cmd("RCPT TO:<b@example.org>", 250)
        c.cmd("DATA", 354)
        c.send(b"Subject: stalled\r\n\r\nnever finished")
        started = time.monotonic()
        srv.signal(signal.SIGTERM)
        r = c.expect(421)
        elapsed = time.monotonic() - started
        assert r.text == "4.3.2 localhost Service shutting down, closing connection"
        assert 0.8 <= elapsed <= 10, f"cut after {elapsed:.2f}s, drain timeout is 1s"
        assert c.read_until_closed() == b""
    assert srv.wait() == 0
    assert "drain period over: closing 1 connection" in srv.log()
    assert srv.message_ids() == []


def test_second_sigterm_stops_at_once(server_factory):
    srv = server_factory("--drain-timeout", "60")
    with srv.connect(timeout=15) as c:
        c.greet()
        c.cmd("MAIL FROM:<a@example.org>", 250)
        srv.signal(signal.SIGTERM)
        srv.wait_for_log(r"received SIGTERM: stopping")
        started = time.monotonic()
        srv.signal(signal.SIGTERM)
        c.expect(421, "4.3.2")
        assert srv.wait(timeout=10) == 0
        assert time.monotonic() - started < 10
    assert "closing every connection now" in srv.log()


def test_memory_store_eviction_counts(server_factory):
    srv = server_factory("--store-max-messages", "2")
    with srv.smtp(helo="evict.example") as client:
        for i in range(5):
            assert client.sendmail("a@example.org", ["b@example.org"], make_message(f"evict {i}", "x")) == {}
    assert len(srv.wait_for_messages(5)) == 5  # the directory keeps everything; only memory is bounded
    assert srv.stop() == 0
    assert "stopped: 5 messages accepted, 3 evicted" in srv.log()


# -- listeners --------------------------------------------------------------------------------------------------


def ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not ipv6_loopback(), reason="no IPv6 loopback (::1) on this machine")
def test_ipv6_listener(server_factory):
    srv = server_factory(smtp="[::1]:0")
    listener = srv.listener("smtp")
    assert listener["host"] == "::1"
    assert listener["address"] == f"[::1]:{listener['port']}"
    with smtplib.SMTP("::1", listener["port"], timeout=20) as client:
        client.ehlo("v6.example")
        assert client.sendmail("a@example.org", ["b@example.org"], make_message("over ipv6", "hello")) == {}
        local_port = client.sock.getsockname()[1]
    (m,) = srv.wait_for_messages(1)
    assert m["client"] == f"[::1]:{local_port}"
    assert srv.wait_for_log(rf"listening for smtp on \[::1\]:{listener['port']}")


def test_submission_listener_requires_starttls_first(server):
    """Port 587 practice (RFC 6409, 8314): STARTTLS first, AUTH offered only after it, MAIL refused before."""
    sub = server.listener("submission")
    assert sub["port"] != server.port
    with smtplib.SMTP(sub["host"], sub["port"], timeout=20) as client:
        code, text = client.ehlo("sub.example")
        assert code == 250
        assert client.has_extn("starttls") and not client.has_extn("auth"), text
        with pytest.raises(smtplib.SMTPSenderRefused) as e:
            client.sendmail("a@example.org", ["b@example.org"], make_message("submitted", "x"))
        assert e.value.smtp_code == 530
        assert e.value.smtp_error == b"5.7.0 Must issue a STARTTLS command first"


# -- logs -------------------------------------------------------------------------------------------------------


def test_json_log_lines(server_factory):
    srv = server_factory("--log-format", "json")
    with srv.connect() as c:
        c.greet("json.example")
        transaction(c, "a@example.org", ["b@example.org"], make_message("json log", "x"))
        c.cmd(b"NOOP \x01\x1b[2J\x7f \xff", 250)
        c.cmd("QUIT", 221)
    srv.wait_for_log(r'"event":"close"')
    assert srv.stop() == 0
    raw = srv.log_bytes()
    assert raw.endswith(b"\n")
    entries = []
    for n, line in enumerate(raw.decode("utf-8").splitlines(), 1):
        try:
            entries.append(json.loads(line))
        except ValueError:
            pytest.fail(f"stderr line {n} is not JSON: {line!r}")
    for e in entries:
        assert {"time", "level", "event", "text"} <= set(e), e
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", e["time"]), e
    session = [e for e in entries if e.get("session") == 1]
    events = {e["event"] for e in session}
    assert {"connect", "command", "reply", "message", "close"} <= events, events
    noop = [e["text"] for e in session if e["event"] == "command" and e["text"].startswith("NOOP ")]
    assert noop == ["NOOP \\x01\\x1b[2J\\x7f \\xff"]
    assert any(e["event"] == "info" and e["text"].startswith("smtpfault ") and e["text"].endswith(" ready")
               for e in entries)


def test_text_log_sanitises_client_bytes(server):
    with server.connect() as c:
        c.greet()
        c.cmd(b"NOOP \x01\x1b[31mred\x7f \xff\xfe tab\there back\\slash \xc3\xa9t\xc3\xa9", 250)
        c.cmd(b"HELO " + b"\x1b" * 300, 250)
        c.cmd(b"X\rY", 500)
        c.cmd("QUIT", 221)
    server.wait_for_log(r"#1 close client quit")
    raw = server.log_bytes()
    # No control byte from the client reaches the log: only newlines end lines.
    assert not re.search(rb"[\x00-\x09\x0b-\x1f\x7f]", raw), "raw control bytes in the transcript"
    log = server.log()
    assert "#1 command NOOP \\x01\\x1b[31mred\\x7f \\xff\\xfe tab\\there back\\\\slash été" in log
    # Long client text is cut, and the cut is said.
    helo = [t for e, t in server.session_events(1, "command") if t.startswith("HELO ")]
    assert len(helo) == 1 and re.search(r"\.\.\.\(\+\d+ bytes\)$", helo[0]), helo
    assert "#1 command X\\rY" in log


def test_log_escapes_unicode_control_characters(server):
    """C1 controls are control characters too: U+009B is CSI to 8-bit terminals, U+0085 (NEL) a line
    break to Unicode-aware log readers. Arriving as well-formed UTF-8 must not let them through raw."""
    with server.connect() as c:
        c.greet()
        c.cmd("NOOP a\u0085#1 close forged\u009b31mred".encode("utf-8"), 250)
        c.cmd("QUIT", 221)
    server.wait_for_log(r"#1 close client quit")
    (noop,) = [t for e, t in server.session_events(1, "command") if t.startswith("NOOP ")]
    assert "\u0085" not in noop and "\u009b" not in noop, f"raw C1 control in the transcript: {noop!r}"
    assert "forged" in noop


def test_quiet_logs_nothing_per_session(server_factory):
    srv = server_factory("-q")
    with srv.smtp(helo="quiet.example") as client:
        assert client.sendmail("a@example.org", ["b@example.org"], make_message("quiet", "x")) == {}
    srv.wait_for_messages(1)
    assert srv.stop() == 0
    assert srv.log() == "", srv.log()
