"""
Connection-level faults against real clients: close and reset before the banner, a banner that never comes,
a reply instead of the greeting, slow and dripped banners, refused and blackholed listeners (and their
recovery), resets, closes and hangs later in the session, and the accuracy of `delay`.

Each test asserts what each client itself reports (the texts are the ones users meet, collected for the
error catalog) and what the server's transcript says. Clients run side by side with short timeouts, so a
test waits about as long as its longest timeout.
"""

import math
import re
import smtplib
import socket
import statistics
import time

import pytest

from conftest import RawClient, make_message, transaction
from harness.env import HANG_GUARD, SLOW
from fault_clients import (address, nodemailer, phpmailer, side_by_side, smtplib_send,
                           start_with_profile, swaks)

GREETING = b"220 localhost ESMTP smtpfault\r\n"


def at(stage, **when):
    """A profile with one rule: at stage (and the other conditions), do what the caller adds."""
    return lambda **do: {"rules": [{"when": dict(stage=stage, **when), "do": do}]}


def close_lines(srv):
    """The transcript's close lines, as (reason, bytes in, bytes out, milliseconds)."""
    pattern = re.compile(r"#\d+ close (.*) \(in (\d+) bytes, out (\d+) bytes, (\d+) ms\)$")
    return [(m.group(1), int(m.group(2)), int(m.group(3)), int(m.group(4)))
            for m in map(pattern.search, srv.log_lines()) if m]


def assert_smtplib_error(ran, kind, text):
    assert isinstance(ran.error, kind), ran
    assert str(ran.error) == text, ran


# -- connect stage -------------------------------------------------------------------------------------------


def test_connect_close_is_a_fin_before_the_banner(server_factory, tmp_path):
    srv = start_with_profile(server_factory, tmp_path, at("connect")(close=True))
    r = side_by_side(node=lambda: nodemailer(srv), php=lambda: phpmailer(srv), swaks=lambda: swaks(srv),
                     smtplib=lambda: smtplib_send(srv))

    assert (r["node"].value["code"], r["node"].value["message"]) == ("ECONNECTION", "Connection closed unexpectedly")
    php = r["php"].value
    assert php["exception"]["message"] == "SMTP Error: Could not connect to SMTP host."
    assert "SERVER -> CLIENT: " in php["debug"]  # an empty greeting: the connection was closed
    assert r["swaks"].value.returncode == 6, r["swaks"].value
    assert "*** Remote host closed connection unexpectedly." in r["swaks"].value.stderr
    assert_smtplib_error(r["smtplib"], smtplib.SMTPServerDisconnected, "Connection unexpectedly closed")

    srv.wait_for_log(r"close fault: closed at connect \(in 0 bytes, out 0 bytes", count=4)
    assert len(srv.wait_for_log(r"fault rule 0 at connect: close the connection", count=4)) == 4
    assert srv.message_ids() == []


def test_connect_reset_is_an_rst_before_the_banner(server_factory, tmp_path):
    srv = start_with_profile(server_factory, tmp_path, at("connect")(close="reset"))
    host, port = srv.address
    r = side_by_side(node=lambda: nodemailer(srv), php=lambda: phpmailer(srv), swaks=lambda: swaks(srv),
                     smtplib=lambda: smtplib_send(srv))

    # The RST follows the accept at once, so a client sees it either when its connect() completes or at its
    # first read: both forms are what users meet, and both name the reset.
    node = r["node"].value
    assert node["code"] == "ESOCKET", node
    assert node["message"] in ("read ECONNRESET", f"connect ECONNRESET {host}:{port}"), node
    php = r["php"].value
    assert php["exception"]["message"] == "SMTP Error: Could not connect to SMTP host."
    assert ("SMTP ERROR: Failed to connect to server: Connection reset by peer (104)" in php["debug"]
            or "SERVER -> CLIENT: " in php["debug"]), php["debug"]
    sw = r["swaks"].value
    assert (sw.returncode == 2 and "IO::Socket::INET: connect: Connection reset by peer" in sw.stderr) or (
        sw.returncode == 6 and "*** Remote host closed connection unexpectedly." in sw.stderr), sw
    e = r["smtplib"].error
    assert (isinstance(e, ConnectionResetError) and e.errno == 104) or (
        isinstance(e, smtplib.SMTPServerDisconnected)
        and str(e) == "Connection unexpectedly closed: [Errno 104] Connection reset by peer"), r["smtplib"]

    srv.wait_for_log(r"close fault: reset at connect \(in 0 bytes, out 0 bytes", count=4)
    assert srv.message_ids() == []


def test_connect_hang_every_client_times_out_waiting_for_the_banner(server_factory, tmp_path):
    srv = start_with_profile(server_factory, tmp_path, at("connect")(hang=True))
    r = side_by_side(
        node=lambda: nodemailer(srv, greetingTimeout=1000),
        php=lambda: phpmailer(srv, timelimit=1, debugLevel=4),  # Timelimit, not Timeout, bounds the greeting
        swaks=lambda: swaks(srv, timeout=1),
        smtplib=lambda: smtplib_send(srv, timeout=1))

    assert (r["node"].value["code"], r["node"].value["message"]) == ("ETIMEDOUT", "Greeting never received")
    php = r["php"].value
    assert php["exception"]["message"] == "SMTP Error: Could not connect to SMTP host."
    assert "SMTP -> get_lines(): select timed-out in (1 sec)" in php["debug"], php["debug"]
    sw = r["swaks"].value
    assert sw.returncode == 21, sw
    assert "<** Timeout (1 secs) waiting for server response" in sw.stdout
    assert_smtplib_error(r["smtplib"], smtplib.SMTPServerDisconnected, "Connection unexpectedly closed: timed out")
    for name, ran in r.items():
        assert 0.9 <= ran.elapsed < HANG_GUARD, (name, ran)

    # Nothing was ever sent, and the server held each connection until its client gave up.
    closes = poll_closes(srv, 4)
    assert all(reason == "client closed the connection" and out == 0 and ms >= 900
               for reason, _, out, ms in closes), closes
    assert len(srv.wait_for_log(r"fault rule 0 at connect: hang")) == 4


def poll_closes(srv, n, timeout=10):
    deadline = time.monotonic() + timeout
    while len(close_lines(srv)) < n:
        assert time.monotonic() < deadline, f"{n} closes expected; transcript:\n{srv.log()}"
        time.sleep(0.02)
    return close_lines(srv)


@pytest.mark.parametrize("where", ["connect", "data_end", "tls_handshake-smtps", "tls_handshake-starttls"])
def test_hang_ends_at_the_idle_timeout(server_factory, tmp_path, where):
    """A hang keeps the connection until --idle-timeout, then closes it without a word (no 421, which in
    the middle of a TLS handshake would be read as a TLS record)."""
    stage, _, listener = where.partition("-")
    srv = start_with_profile(server_factory, tmp_path, at(stage)(hang=True), "--idle-timeout", "1")
    with RawClient(*address(srv, "smtps" if listener == "smtps" else "smtp"), timeout=10) as c:
        if stage == "data_end":
            c.greet()
            c.cmd("MAIL FROM:<a@example.org>", 250)
            c.cmd("RCPT TO:<b@example.org>", 250)
            c.cmd("DATA", 354)
            c.send(b"Subject: hang\r\n\r\nbody\r\n.\r\n")
        elif stage == "tls_handshake":
            if listener == "starttls":
                c.greet()
                c.cmd("STARTTLS", 220, "Ready to start TLS")
            c.send(b"\x16\x03\x01\x00\x05hello")  # the start of a ClientHello
        start = time.monotonic()
        rest = c.read_until_closed(timeout=10)
        waited = time.monotonic() - start
    assert rest == b"", rest
    assert 0.8 <= waited < HANG_GUARD, waited
    (reason, _, out, ms) = poll_closes(srv, 1)[0]
    assert reason == {"connect": "idle timeout", "data_end": "idle timeout while hanging",
                      "tls_handshake": "idle timeout during the TLS handshake"}[stage], reason
    assert (out == 0) == (stage == "connect" or listener == "smtps"), out
    assert srv.message_ids() == []


def test_connect_reply_is_said_instead_of_the_greeting(server_factory, tmp_path):
    srv = start_with_profile(server_factory, tmp_path, at("connect")(reply="554 5.7.1 No SMTP service here"))
    r = side_by_side(node=lambda: nodemailer(srv), php=lambda: phpmailer(srv), swaks=lambda: swaks(srv),
                     smtplib=lambda: smtplib_send(srv))
    with srv.connect() as c:
        raw = c.read_until_closed()
    assert raw == b"554 5.7.1 No SMTP service here\r\n"

    node = r["node"].value
    assert (node["code"], node["responseCode"], node["command"]) == ("EPROTOCOL", 554, "CONN")
    assert node["message"] == ("Invalid greeting. response=554 5.7.1 No SMTP service here: "
                               "554 5.7.1 No SMTP service here")
    php = r["php"].value
    assert php["exception"]["message"] == "SMTP Error: Could not connect to SMTP host."
    assert "SERVER -> CLIENT: 554 5.7.1 No SMTP service here" in php["debug"]
    sw = r["swaks"].value
    assert sw.returncode == 21 and "<** 554 5.7.1 No SMTP service here" in sw.stdout, sw
    assert isinstance(r["smtplib"].error, smtplib.SMTPConnectError), r["smtplib"]
    assert (r["smtplib"].error.smtp_code, r["smtplib"].error.smtp_error) == (554, b"5.7.1 No SMTP service here")

    assert len(srv.wait_for_log(r"#\d+ reply 554 5\.7\.1 No SMTP service here", count=5)) == 5
    srv.wait_for_log(r"close fault: refused at connect", count=5)


@pytest.mark.parametrize("stage", ["connect", "greeting"])
def test_slow_banner_impatient_clients_fail_patient_ones_succeed(server_factory, tmp_path, stage):
    delay = 2.0
    srv = start_with_profile(server_factory, tmp_path, at(stage)(delay=int(delay * 1000)))
    r = side_by_side(
        node_impatient=lambda: nodemailer(srv, greetingTimeout=1000),
        node_patient=lambda: nodemailer(srv, greetingTimeout=6000),
        php_impatient=lambda: phpmailer(srv, timelimit=1),
        php_patient=lambda: phpmailer(srv),
        swaks_impatient=lambda: swaks(srv, timeout=1),
        swaks_patient=lambda: swaks(srv, timeout=6),
        smtplib_impatient=lambda: smtplib_send(srv, timeout=1),
        smtplib_patient=lambda: smtplib_send(srv, timeout=6))

    assert r["node_impatient"].value["message"] == "Greeting never received"
    assert r["php_impatient"].value["exception"]["message"] == "SMTP Error: Could not connect to SMTP host."
    assert r["swaks_impatient"].value.returncode == 21
    assert "<** Timeout (1 secs) waiting for server response" in r["swaks_impatient"].value.stdout
    assert_smtplib_error(r["smtplib_impatient"], smtplib.SMTPServerDisconnected,
                         "Connection unexpectedly closed: timed out")

    assert r["node_patient"].value["ok"] is True, r["node_patient"]
    assert r["php_patient"].value["ok"] is True, r["php_patient"]
    assert r["swaks_patient"].value.returncode == 0, r["swaks_patient"]
    assert r["smtplib_patient"].error is None, r["smtplib_patient"]
    for name, ran in r.items():
        if name.endswith("_patient"):
            assert ran.elapsed >= delay, (name, ran)
        else:  # gave up on its own timeout (its message says so), not after the delay: the bound only
            # catches a hang, as a client's start-up on a loaded machine (Node: seconds) counts in elapsed
            assert 0.9 <= ran.elapsed < delay + 10, (name, ran)

    assert len(srv.wait_for_messages(4)) == 4
    assert len(srv.wait_for_log(rf"fault rule 0 at {stage}: delay 2000 ms", count=8)) == 8


@pytest.mark.parametrize("bps", [20, 15])
def test_dripped_greeting_arrives_a_few_bytes_at_a_time(server_factory, tmp_path, bps):
    srv = start_with_profile(server_factory, tmp_path, at("greeting")(drip=bps))
    # A tick every 100 ms sends what is due by then (2 bytes at 20 bytes/s; 1 or 2 at 15), the first at once.
    expected = (math.ceil(len(GREETING) * 10 / bps) - 1) * 0.1

    def raw():
        chunks = []
        with socket.create_connection(srv.address, timeout=10) as s:
            data = b""
            while not data.endswith(b"\r\n"):
                chunk = s.recv(100)
                assert chunk, f"closed after {data!r}"
                chunks.append((time.monotonic(), chunk))
                data += chunk
            s.sendall(b"EHLO raw.example\r\n")
            start = time.monotonic()
            ehlo = s.recv(4096)
            return chunks, time.monotonic() - start, ehlo

    r = side_by_side(raw=raw,
                     node_impatient=lambda: nodemailer(srv, greetingTimeout=1000),
                     node_patient=lambda: nodemailer(srv, greetingTimeout=5000),
                     smtplib=lambda: smtplib_send(srv, timeout=1))  # 1 s per read, and every read gets bytes

    chunks, ehlo_time, ehlo = r["raw"].value
    assert b"".join(c for _, c in chunks) == GREETING
    assert len(chunks) >= 10 and max(len(c) for _, c in chunks) <= 4, chunks  # 2 bytes a tick, 2 ticks merged at most
    spread = chunks[-1][0] - chunks[0][0]
    assert expected - 0.15 <= spread <= expected + 0.5, (spread, expected)
    assert ehlo.startswith(b"250-localhost\r\n") and ehlo_time < 0.5, (ehlo, ehlo_time)  # only the greeting drips

    # Nodemailer waits for a whole greeting line: a greeting timeout shorter than the drip fails.
    assert r["node_impatient"].value["message"] == "Greeting never received"
    assert r["node_patient"].value["ok"] is True, r["node_patient"]
    assert r["smtplib"].error is None and r["smtplib"].elapsed >= expected, r["smtplib"]
    assert len(srv.wait_for_messages(2)) == 2


# -- refuse and blackhole -------------------------------------------------------------------------------------

REFUSE_SMTP = {"rules": [{"when": {"stage": "connect", "listener": "smtp"}, "do": {"refuse": True}}]}
BLACKHOLE_SMTP = {"rules": [{"when": {"stage": "connect", "listener": "smtp"}, "do": {"blackhole": True}}]}


def other_listeners_serve(srv):
    """A session on submission and a message through smtps, while smtp is refused or blackholed."""
    with smtplib.SMTP(*address(srv, "submission"), timeout=10) as c:
        assert c.ehlo("other.example")[0] == 250
        assert c.noop()[0] == 250
    return smtplib_send(srv, "smtps", mode="implicit")


def assert_connect_failed(r, srv, node, php_reason, swaks_reason):
    """connect() failed for Nodemailer ((code, message)), PHPMailer and swaks (the OS error as each shows it)."""
    host, port = srv.address
    assert (r["node"].value["code"], r["node"].value["message"]) == node, r["node"]
    assert r["node"].value["command"] == "CONN", r["node"]
    php = r["php"].value
    assert php["exception"]["message"] == "SMTP Error: Could not connect to SMTP host."
    assert f"SMTP ERROR: Failed to connect to server: {php_reason}" in php["debug"], php["debug"]
    sw = r["swaks"].value
    assert sw.returncode == 2, sw
    assert f"*** Error connecting to {host}:{port}:\n*** \tIO::Socket::INET: connect: {swaks_reason}" in sw.stderr, sw


def test_refuse_every_client_gets_connection_refused(server_factory, tmp_path):
    srv = start_with_profile(server_factory, tmp_path, REFUSE_SMTP)
    host, port = srv.address
    r = side_by_side(node=lambda: nodemailer(srv), php=lambda: phpmailer(srv), swaks=lambda: swaks(srv),
                     smtplib=lambda: smtplib_send(srv), others=lambda: other_listeners_serve(srv))

    assert_connect_failed(r, srv, ("ESOCKET", f"connect ECONNREFUSED {host}:{port}"), "Connection refused (111)",
                          "Connection refused")
    assert isinstance(r["smtplib"].error, ConnectionRefusedError) and r["smtplib"].error.errno == 111, r["smtplib"]
    assert r["others"].error is None and r["others"].value.startswith("TLSv1."), r["others"]

    srv.wait_for_log(rf"smtp listener on {host}:{port}: refusing connections \(ECONNREFUSED\)")
    assert not re.search(r"#\d+ connect \S+ on smtp ", srv.log()), "a connection reached the refused listener"
    assert len(srv.wait_for_messages(1)) == 1


def retry_until_through(srv, deadline, connect_timeout, pause=0.1):
    """Try a session every pause seconds until one gets through; (failures, time it got through)."""
    failures = []
    while time.monotonic() < deadline:
        try:
            smtplib_send(srv, timeout=connect_timeout)
            return failures, time.monotonic()
        except (ConnectionRefusedError, TimeoutError) as e:
            failures.append(type(e).__name__)
            time.sleep(pause)
    raise AssertionError(f"never got through; {len(failures)} failures: {failures[-3:]}")


def test_refuse_window_then_the_same_port_accepts(server_factory, tmp_path):
    window = 3.0
    profile = {"rules": [{"when": {"stage": "connect", "listener": "smtp", "until": f"{window}s"},
                          "do": {"refuse": True}}]}
    loaded_before = time.monotonic()  # the window opens when the profile loads, after this
    srv = start_with_profile(server_factory, tmp_path, profile)
    host, port = srv.address
    assert time.monotonic() - loaded_before < window - 0.5, "the server took too long to start"
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((host, port), timeout=5).close()

    failures, through = retry_until_through(srv, loaded_before + window + 5, connect_timeout=5)
    assert failures and set(failures) == {"ConnectionRefusedError"}, failures
    assert window <= through - loaded_before < window + 3, through - loaded_before
    ok = swaks(srv)
    assert ok.returncode == 0, ok

    log = srv.log()
    refusing = log.index(f"smtp listener on {host}:{port}: refusing connections (ECONNREFUSED)")
    accepting = log.index(f"smtp listener on {host}:{port}: accepting connections")
    assert refusing < accepting < log.index(" connect ")
    assert len(srv.wait_for_messages(2)) == 2


def test_blackhole_connect_times_out(server_factory, tmp_path):
    srv = start_with_profile(server_factory, tmp_path, BLACKHOLE_SMTP)
    host, port = srv.address
    r = side_by_side(node=lambda: nodemailer(srv, connectionTimeout=1000),
                     php=lambda: phpmailer(srv, timeout=1),
                     swaks=lambda: swaks(srv, timeout=1),
                     smtplib=lambda: smtplib_send(srv, timeout=1),
                     others=lambda: other_listeners_serve(srv))

    assert_connect_failed(r, srv, ("ETIMEDOUT", "Connection timeout"), "Connection timed out (110)", "timeout")
    assert isinstance(r["smtplib"].error, TimeoutError) and str(r["smtplib"].error) == "timed out", r["smtplib"]
    for name in ("node", "php", "swaks", "smtplib"):
        assert 0.9 <= r[name].elapsed < HANG_GUARD, (name, r[name])
    # The server served the other listeners meanwhile.
    assert r["others"].error is None, r["others"]
    assert r["others"].elapsed < HANG_GUARD, r["others"]

    srv.wait_for_log(rf"smtp listener on {host}:{port}: blackholing connections \(connect\(\) times out\)")
    assert not re.search(r"#\d+ connect \S+ on smtp ", srv.log()), "a connection reached the blackholed listener"


def test_blackhole_window_then_the_listener_recovers(server_factory, tmp_path):
    window = 2.0 * SLOW  # under valgrind the server alone takes seconds to start
    profile = {"rules": [{"when": {"stage": "connect", "listener": "smtp", "until": f"{window}s"},
                          "do": {"blackhole": True}}]}
    loaded_before = time.monotonic()
    srv = start_with_profile(server_factory, tmp_path, profile)
    host, port = srv.address
    assert time.monotonic() - loaded_before < window - 0.5, "the server took too long to start"

    def patient():
        # One connect() with a long timeout: its SYN is dropped, and a retransmission (1 s, 3 s, 7 s after
        # the first) finds the listener accepting again.
        s = socket.create_connection((host, port), timeout=window + 10)
        with s:
            s.settimeout(10)
            return s.recv(100), time.monotonic()

    r = side_by_side(patient=patient,
                     retrying=lambda: retry_until_through(srv, loaded_before + window + 10 * SLOW,
                                                          connect_timeout=0.5))
    greeting, connected = r["patient"].value
    assert greeting == GREETING
    # a SYN retransmission (1, 3, 7, 15 s after the first) finds the listener back
    assert window <= connected - loaded_before < window + 8 * SLOW, connected - loaded_before
    failures, through = r["retrying"].value
    assert failures and set(failures) == {"TimeoutError"}, failures
    assert window <= through - loaded_before < window + 3 * SLOW, through - loaded_before

    srv.wait_for_log(rf"smtp listener on {host}:{port}: accepting connections")
    assert len(srv.wait_for_messages(1)) == 1


# -- later stages ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("stage,how", [("rcpt", "reset"), ("data_end", "reset"), ("data_end", "fin")])
def test_close_later_in_the_session(server_factory, tmp_path, stage, how):
    close = "reset" if how == "reset" else True
    srv = start_with_profile(server_factory, tmp_path, at(stage)(close=close))
    r = side_by_side(node=lambda: nodemailer(srv), php=lambda: phpmailer(srv), swaks=lambda: swaks(srv),
                     smtplib=lambda: smtplib_send(srv))

    node = r["node"].value
    if how == "reset":
        # Node reports the RST as a read error, except when its event loop handles the close before the
        # read (seen once under load): then as a close. smtplib below tells an RST from a FIN either way.
        assert (node["code"], node["message"]) in {("ESOCKET", "read ECONNRESET"),
                                                   ("ECONNECTION", "Connection closed unexpectedly")}, node
        assert_smtplib_error(r["smtplib"], smtplib.SMTPServerDisconnected,
                             "Connection unexpectedly closed: [Errno 104] Connection reset by peer")
    else:
        assert (node["code"], node["message"]) == ("ECONNECTION", "Connection closed unexpectedly"), node
        assert_smtplib_error(r["smtplib"], smtplib.SMTPServerDisconnected, "Connection unexpectedly closed")
    php = r["php"].value
    if stage == "rcpt":
        assert php["exception"]["message"] == "SMTP Error: The following recipients failed: rcpt@example.org: "
        assert "SMTP ERROR: RCPT TO command failed: " in php["debug"]
    else:
        assert php["exception"]["message"] == "SMTP Error: data not accepted."
        assert php["errorInfo"] == "SMTP Error: data not accepted.SMTP server error: DATA END command failed"
    sw = r["swaks"].value
    assert sw.returncode == 6 and "*** Remote host closed connection unexpectedly." in sw.stderr, sw

    verb = "reset" if how == "reset" else "close"
    assert len(srv.wait_for_log(rf"fault rule 0 at {stage}: {verb} the connection", count=4)) == 4
    srv.wait_for_log(rf"close fault: connection {'reset' if how == 'reset' else 'closed'}", count=4)
    time.sleep(0.2)
    assert srv.message_ids() == [], "a message was kept"


def test_hang_at_data_end_clients_give_up_others_are_served(server_factory, tmp_path):
    profile = at("data_end", sender="app@example.org")(hang=True)  # the clients' sender; others go through
    srv = start_with_profile(server_factory, tmp_path, profile)

    def other_session():
        time.sleep(0.5)  # while the four hang
        with srv.connect() as c:
            c.greet()
            start = time.monotonic()
            msg_id = transaction(c, "other@example.org", ["b@example.org"], make_message("other", "served"))
            return msg_id, time.monotonic() - start

    r = side_by_side(node=lambda: nodemailer(srv, socketTimeout=2000),
                     php=lambda: phpmailer(srv, timelimit=2),
                     swaks=lambda: swaks(srv, timeout=2),
                     smtplib=lambda: smtplib_send(srv, timeout=2),
                     other=other_session)

    node = r["node"].value
    assert (node["code"], node["message"], node["command"]) == ("ETIMEDOUT", "Timeout", "CONN"), node
    php = r["php"].value
    assert php["exception"]["message"] == "SMTP Error: data not accepted."
    assert php["smtpError"]["error"] == "DATA END command failed"
    sw = r["swaks"].value
    assert sw.returncode == 26 and "<** Timeout (2 secs) waiting for server response" in sw.stdout, sw
    assert_smtplib_error(r["smtplib"], smtplib.SMTPServerDisconnected, "Connection unexpectedly closed: timed out")
    msg_id, took = r["other"].value
    # Served while the four hang: done before the first of them gave up (on its own 2 s timeout).
    assert r["other"].elapsed < min(r[n].elapsed for n in ("node", "php", "swaks", "smtplib")), (took, r)

    assert len(srv.wait_for_log(r"fault rule 0 at data_end: hang", count=4)) == 4
    closes = poll_closes(srv, 5)
    hung = [c for c in closes if c[3] >= 1900]
    assert len(hung) == 4 and all(c[0].startswith("client ") for c in hung), closes
    (m,) = srv.messages()
    assert m.id == msg_id and m.sender == "other@example.org"


# -- delay accuracy -------------------------------------------------------------------------------------------


def percentile(values, p):
    s = sorted(values)
    return s[min(len(s) - 1, max(0, math.ceil(p / 100 * len(s)) - 1))]


def test_delay_accuracy(server_factory, tmp_path, capsys):
    """Every second NOOP of the connection is delayed by 50 ms; the others are the baseline, timed the same
    way, interleaved on one connection. The error of one delay is (its round trip - 50 ms - the median
    undelayed round trip). The issue's target is p99 < 5 ms on an idle machine (bench/delay_accuracy.py
    measures it); the bound here is on the median, which a loaded CI machine or an ASan build leaves in place."""
    delay_ms, samples = 50, 200
    profile = at("noop", every=2, count="connection")(delay=delay_ms)
    srv = start_with_profile(server_factory, tmp_path, profile)
    delayed, baseline = [], []
    with srv.connect(timeout=10) as c:
        c.greet()
        for _ in range(samples):
            for out in (baseline, delayed):
                start = time.perf_counter()
                c.send(b"NOOP\r\n")
                c.expect(250)
                out.append((time.perf_counter() - start) * 1000)
    base = statistics.median(baseline)
    errors = [d - delay_ms - base for d in delayed]
    p50, p99, worst = percentile(errors, 50), percentile(errors, 99), max(errors)
    with capsys.disabled():
        print(f"\ndelay accuracy, {samples} x {delay_ms} ms at noop: undelayed p50 {base:.3f} ms, max "
              f"{max(baseline):.3f} ms; error p50 {p50:.3f} ms, p99 {p99:.3f} ms, max {worst:.3f} ms, "
              f"min {min(errors):.3f} ms")
    # Scheduling on a loaded machine can hold any one NOOP up; a fault delaying the wrong NOOPs would hold
    # up half of them or all.
    late = [b for b in baseline if b >= delay_ms]
    assert len(late) < samples / 20, f"{len(late)} of {samples} undelayed NOOPs took {delay_ms} ms or more"
    assert min(delayed) >= delay_ms - 1, f"a delay ended early: {min(delayed):.3f} ms"
    # The median, not the p99: on a loaded machine a few of 200 round trips wait for a CPU (a CI run saw a p99
    # of 104 ms with a p50 of 1.7 ms); bench/delay_accuracy.py measures the tail on a quiet machine.
    assert p50 < 25, f"median error {p50:.1f} ms (p99 {p99:.1f} ms)"
    assert len(srv.wait_for_log(r"fault rule 0 at noop: delay 50 ms", count=samples)) == samples
