"""`smtpfault ctl`: the admin protocol from the command line. Exit codes: 0 ok, 1 an error answer or no server,
2 a usage error. Every run is bounded (conftest.ctl); followers are stopped with SIGINT by PID.
"""

import json
import queue
import re
import signal
import socket
import subprocess
import threading
import time

import pytest

from conftest import ctl, ctl_argv, queued_id, server_env, suite_pki

ID_RE = r"[0-9A-F]{20}"


def send(srv, sender="app@example.org", to="alice@example.org", msg=None, helo="ctl.example"):
    msg = msg or b"Subject: from ctl tests\r\nFrom: <app@example.org>\r\n\r\nHello there.\r\n"
    with srv.smtp(helo=helo) as client:
        client.ehlo(helo)
        client.mail(sender)
        client.rcpt(to)
        code, resp = client.data(msg)
        assert code == 250, (code, resp)
    return queued_id(resp)


def ok(proc, stdout=None):
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout: {proc.stdout}\nstderr: {proc.stderr}"
    if stdout is not None:
        assert proc.stdout == stdout
    return proc.stdout


def fails(proc, code, stderr_has):
    assert proc.returncode == code, f"exit {proc.returncode} (expected {code})\nstdout: {proc.stdout}\nstderr: {proc.stderr}"
    assert stderr_has in proc.stderr, proc.stderr
    return proc.stderr


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ping(admin_srv, admin_transport):
    unix = admin_transport == "unix"
    ok(ctl(admin_srv, "ping", unix=unix), "pong\n")
    ok(ctl(admin_srv, "--json", "ping", unix=unix), '{"id":1,"ok":true,"pong":true}\n')


def test_ping_with_nothing_listening(short_tmp):
    port = free_port()
    fails(ctl(None, "--admin", f"127.0.0.1:{port}", "ping"), 1,
          f"smtpfault ctl: cannot reach the admin socket at 127.0.0.1:{port}: connection refused")
    fails(ctl(None, "--admin", f"unix:{short_tmp}/none.sock", "ping"), 1,
          f"smtpfault ctl: cannot reach the admin socket at unix:{short_tmp}/none.sock: no such file or directory")


def test_version_and_ca(admin_srv):
    out = ok(ctl(admin_srv, "version"))
    assert re.match(r"^smtpfault \d+\.\d+\.\d+ \(libuv [\d.]+, wolfSSL [\d.]+, cJSON [\d.]+\)\n$", out), out
    assert ok(ctl(admin_srv, "ca")) == (suite_pki() / "ca.pem").read_text()


def test_load_validate_profile_clear_profile(admin_srv, tmp_path):
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"name": "ctl-block", "rules": [
        {"when": {"stage": "rcpt", "rcpt": "*@blocked.test"}, "do": {"reply": "550 5.7.1 Blocked"}}]}))
    ok(ctl(admin_srv, "validate", good), 'valid: profile "ctl-block": 1 rule at rcpt on smtp, submission, smtps\n')
    assert json.loads(ok(ctl(admin_srv, "profile")))["name"] == ""
    ok(ctl(admin_srv, "load", good), 'loaded profile "ctl-block": 1 rule at rcpt on smtp, submission, smtps\n')
    shown = json.loads(ok(ctl(admin_srv, "profile")))
    assert shown == {"name": "ctl-block", "rules": 1, "stages": ["rcpt"], "listeners": ["smtp", "submission", "smtps"],
                     "settings": [], "profile": json.loads(good.read_text())}
    # What a profile touches, said plainly: a listener-bound rule, settings only, nothing at all.
    ok(ctl(admin_srv, "validate", "connect-refused"),
       'valid: profile "connect-refused": 1 rule at connect on smtp, submission, smtps\n')
    ok(ctl(admin_srv, "validate", "tls-wrong-version-number"),
       'valid: profile "tls-wrong-version-number": 1 rule at tls_handshake on smtps\n')
    ok(ctl(admin_srv, "validate", "tls-certificate-expired"),
       'valid: profile "tls-certificate-expired": 0 rules; changes tls.certificate\n')
    unnamed = tmp_path / "unnamed.json"
    unnamed.write_text('{"rules": []}')
    ok(ctl(admin_srv, "validate", unnamed),
       "valid: profile (unnamed): no rules and no settings: the server behaves as without a profile\n")

    # Errors name the FILE, as given, one per line; the profile in force stays.
    bad = tmp_path / "broken.json"
    bad.write_text('{"rules": [{"when": {"stage": "rpct"}, "do": {"reply": "550 x"}},\n'
                   '           {"whne": {}, "do": {}}]}')
    for cmd in ("load", "validate"):
        proc = ctl(admin_srv, cmd, bad)
        assert proc.returncode == 1 and proc.stdout == ""
        lines = proc.stderr.splitlines()
        assert lines[0].startswith(f'{bad}: rules[0].when.stage: unknown stage "rpct"'), proc.stderr
        assert f"{bad}: rules[1].whne: unknown key (expected one of: name, comment, when, do)" in lines
        assert all(line.startswith(f"{bad}: ") for line in lines), proc.stderr
    # A relative FILE is named as given.
    proc = ctl(admin_srv, "load", "broken.json", cwd=tmp_path)
    assert proc.returncode == 1 and proc.stderr.startswith("broken.json: rules[0].when.stage"), proc.stderr
    not_json = tmp_path / "not-json.json"
    not_json.write_text('{"rules": [\n  {"when": }\n]}')
    fails(ctl(admin_srv, "load", not_json), 1, f"{not_json}: invalid JSON at line 2, column 12")
    fails(ctl(admin_srv, "load", tmp_path / "absent.json"), 1,
          f"smtpfault ctl: cannot read {tmp_path}/absent.json: no such file or directory")
    assert json.loads(ok(ctl(admin_srv, "profile")))["name"] == "ctl-block"

    ok(ctl(admin_srv, "clear-profile"), "profile cleared\n")
    assert json.loads(ok(ctl(admin_srv, "profile")))["profile"] == {}


def test_messages_message_delete_clear(admin_srv):
    m1 = send(admin_srv, "app@example.org", "alice@example.org")
    body8 = b"Subject: bytes\r\nContent-Type: text/plain; charset=latin-1\r\n\r\nGr\xfc\xdfe\r\n.dot\r\nend\r\n"
    m2 = send(admin_srv, "", "bob@example.net", msg=body8)
    out = ok(ctl(admin_srv, "messages"))
    lines = out.splitlines()
    assert lines[-1] == "2 messages"
    assert re.match(rf"^{m1} +app@example.org +alice@example.org  \d+ bytes  \d{{4}}-\d\d-\d\dT[\d:.]+Z$", lines[0])
    assert re.match(rf"^{m2} +<> +bob@example.net  {len(body8)} bytes  ", lines[1]), lines[1]
    assert ok(ctl(admin_srv, "messages", "--to", "*@example.net")).splitlines() == [lines[1], "1 message"]
    assert ok(ctl(admin_srv, "messages", "--from", "app@*")).splitlines() == [lines[0], "1 message"]
    assert ok(ctl(admin_srv, "messages", "--subject", "BYTES")).splitlines() == [lines[1], "1 message"]
    assert ok(ctl(admin_srv, "wait", "--subject", "*ctl tests", "--timeout", "1")).splitlines() == [lines[0]]
    assert ok(ctl(admin_srv, "messages", "--since", m1)).splitlines() == [lines[1], "1 message"]
    assert ok(ctl(admin_srv, "messages", "--limit", "1")).splitlines() == [lines[0],
                                                                            "1 message (more match: --limit)"]

    shown = ctl(admin_srv, "message", m1, text=False)
    assert shown.returncode == 0 and shown.stdout.split(b"\n")[0].decode() == lines[0]
    # The envelope line, the header fields unfolded, a blank line, the body as it is (CRLF line ends).
    assert shown.stdout.split(b"\n", 1)[1] == b"Subject: from ctl tests\nFrom: <app@example.org>\n\nHello there.\r\n"
    # --raw: the exact bytes, 8-bit and CRLF included, as the store directory has them.
    raw = ctl(admin_srv, "message", m2, "--raw", text=False)
    assert raw.returncode == 0 and raw.stdout == body8 == admin_srv.message(m2).raw
    assert "(the body is not UTF-8: use --raw)" in ok(ctl(admin_srv, "message", m2))
    fails(ctl(admin_srv, "message", "NOSUCHID"), 1,
          'smtpfault ctl: message: no message has the id "NOSUCHID" (evicted, deleted or never kept) (not_found)')

    ok(ctl(admin_srv, "delete", m1), f"deleted {m1}\n")
    fails(ctl(admin_srv, "delete", m1), 1, "(not_found)")
    ok(ctl(admin_srv, "clear"), "clear: 1 message cleared\n")
    ok(ctl(admin_srv, "messages"), "0 messages\n")


def test_wait(admin_srv, admin_transport):
    unix = admin_transport == "unix"
    argv = ctl_argv(admin_srv, "wait", "--to", "a@b.test", "--timeout", "30", unix=unix)
    waiter = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=server_env(),
                              stdin=subprocess.DEVNULL)
    try:
        time.sleep(0.5)
        assert waiter.poll() is None, "wait returned before the message"
        send(admin_srv, "other@example.org", "x@b.test")  # does not match
        time.sleep(0.3)
        assert waiter.poll() is None
        msg_id = send(admin_srv, "app@example.org", "a@b.test")
        out, err = waiter.communicate(timeout=30)
    finally:
        waiter.kill()
        waiter.wait()
    assert waiter.returncode == 0, err
    assert re.match(rf"^{msg_id} +app@example.org +a@b.test  \d+ bytes  ", out) and out.count("\n") == 1, out
    # A kept match answers at once; --since skips it.
    ok(ctl(admin_srv, "wait", "--to", "a@b.test", "--timeout", "5", unix=unix))
    start = time.monotonic()
    fails(ctl(admin_srv, "wait", "--to", "a@b.test", "--since", msg_id, "--timeout", "1", unix=unix), 1,
          "smtpfault ctl: wait: no matching message arrived in time")
    assert 0.9 < time.monotonic() - start < 10
    proc = ctl(admin_srv, "--json", "wait", "--from", "nobody@*", "--timeout", "0.2", unix=unix)
    assert proc.returncode == 1
    assert json.loads(proc.stdout)["error"]["code"] == "timeout"


class Follower:
    """A `smtpfault ctl` process whose stdout lines are read by a thread, so that every read is bounded."""

    def __init__(self, argv):
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env=server_env(), stdin=subprocess.DEVNULL)
        self.lines = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def line(self, timeout=20.0, empty_ok=False):
        """The next line; None after timeout when empty_ok, else an AssertionError."""
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            if empty_ok:
                return None
            raise AssertionError(f"no line from {self.proc.args[1:]} within {timeout}s")
        assert line is not None, f"ctl ended early (exit {self.proc.wait(10)}): {self.proc.stderr.read()}"
        return line

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)


def session_lines(follower, helo, json_mode):
    """Every line of the session that said EHLO helo, from its connect to its close. Lines of other
    sessions (the probes', whose events may still be arriving) are read and left out."""
    by_session, sid = {}, None
    while True:
        line = follower.line()
        if json_mode:
            event = json.loads(line)
            number, kind, text = event.get("session"), event["event"], event.get("text", "")
        else:
            parts = line.split(" ", 3)
            number, kind, text = parts[1], parts[2], parts[3] if len(parts) > 3 else ""
        by_session.setdefault(number, []).append(line)
        if sid is None and kind == "command" and text.lower() == f"ehlo {helo}":
            sid = number
        if sid is not None and number == sid and kind == "close":
            return by_session[sid]


def test_events_follows_until_sigint(admin_srv, admin_transport):
    unix = admin_transport == "unix"
    for json_mode in (False, True):
        follower = Follower(ctl_argv(admin_srv, *(["--json"] if json_mode else []), "events", unix=unix))
        try:
            if json_mode:
                assert json.loads(follower.line()) == {"id": 1, "ok": True, "subscribed": True}
            else:  # the human form prints nothing for the subscription: probe with sessions until one shows
                for probe in range(30):
                    with admin_srv.smtp(helo=f"probe{probe}.example") as client:
                        client.noop()
                    if follower.line(timeout=1, empty_ok=True) is not None:
                        break
                else:
                    pytest.fail("ctl events showed no event of 30 sessions")
            helo = f"events{int(json_mode)}.example"
            msg_id = send(admin_srv, helo=helo)
            lines = session_lines(follower, helo, json_mode)
            assert follower.proc.poll() is None, "ctl events stopped by itself"
            follower.proc.send_signal(signal.SIGINT)
            assert follower.proc.wait(timeout=10) == 0, follower.proc.stderr.read()
            assert follower.lines.get(timeout=10) is None
        finally:
            follower.stop()
        if json_mode:
            events = [json.loads(line) for line in lines]
            assert events[0]["event"] == "connect"
            assert any(e["event"] == "message" and e["text"].startswith(msg_id) for e in events)
        else:
            assert re.match(r"^\d{4}-\d\d-\d\dT[\d:.]+Z #\d+ connect 127\.0\.0\.1:\d+ on smtp ", lines[0]), lines[0]
            assert any(re.match(rf"^\S+ #\d+ message {msg_id}: \d+ bytes, 1 recipient$", line) for line in lines)
            assert any(" command ehlo events0.example" in line for line in lines), lines
            assert re.match(r"^\S+ #\d+ close ", lines[-1])


def test_reset_stats_sessions_session(admin_srv):
    send(admin_srv)
    send(admin_srv)
    stats = json.loads(ok(ctl(admin_srv, "stats")))
    assert "ok" not in stats and "id" not in stats
    assert stats["messages"]["accepted"] == 2 and stats["sessions"]["total"] == 2
    sessions = json.loads(ok(ctl(admin_srv, "sessions")))
    assert sessions["live"] == [] and [s["id"] for s in sessions["recent"]] == [2, 1]
    session = json.loads(ok(ctl(admin_srv, "session", "1")))["session"]
    assert session["id"] == 1 and session["transcript"][0]["event"] == "connect"
    assert {"event": "command", "text": "ehlo ctl.example"}.items() <= session["transcript"][2].items()
    fails(ctl(admin_srv, "session", "99"), 1, "smtpfault ctl: session: no live or recent session has the id 99")
    ok(ctl(admin_srv, "reset"), "reset: 2 messages cleared\n")
    assert json.loads(ok(ctl(admin_srv, "stats")))["messages"]["accepted"] == 0
    ok(ctl(admin_srv, "reset"), "reset: 0 messages cleared\n")


def test_json_prints_the_raw_response(admin_srv):
    msg_id = send(admin_srv)
    with admin_srv.admin() as admin:
        for args, req in [(["stats"], {"cmd": "stats"}), (["messages"], {"cmd": "messages.list"}),
                          (["message", msg_id], {"cmd": "messages.get", "message": msg_id}),
                          (["sessions"], {"cmd": "sessions.list"}), (["profile"], {"cmd": "profile.get"}),
                          (["ca"], {"cmd": "tls.ca"}), (["version"], {"cmd": "version"})]:
            out = ok(ctl(admin_srv, "--json", *args))
            assert out.endswith("}\n") and out.count("\n") == 1, out
            got, want = json.loads(out), admin.request({"id": 1, **req})
            for volatile in ("uptime_ms",):
                got.pop(volatile, None)
                want.pop(volatile, None)
            assert got == want, args
    proc = ctl(admin_srv, "--json", "message", "NOPE")
    assert proc.returncode == 1 and proc.stderr == ""
    assert json.loads(proc.stdout)["error"]["code"] == "not_found"
    ok(ctl(admin_srv, "raw", '{"id": "r", "cmd": "ping"}'), "{\n\t\"pong\":\ttrue\n}\n")
    ok(ctl(admin_srv, "--json", "raw", '{"id": "r", "cmd": "ping"}'), '{"id":"r","ok":true,"pong":true}\n')
    fails(ctl(admin_srv, "raw", '{"cmd": "nope"}'), 1, "(unknown_command)")


def test_token(short_tmp, server_factory):
    srv = server_factory("--admin", f"unix:{short_tmp}/admin.sock", "--admin-token", "t0ken")
    fails(ctl(srv, "ping"), 1, "smtpfault ctl: ping: this admin socket needs \"token\" in every request "
                               "(--admin-token) (unauthorized)")
    fails(ctl(srv, "--token", "wrong", "ping"), 1, "(unauthorized)")
    ok(ctl(srv, "--token", "t0ken", "ping"), "pong\n")
    ok(ctl(srv, "ping", env={"SMTPFAULT_ADMIN_TOKEN": "t0ken"}), "pong\n")
    ok(ctl(srv, "ping", unix=True, env={"SMTPFAULT_ADMIN_TOKEN": "t0ken"}), "pong\n")
    ok(ctl(srv, "--token", "t0ken", "ping", env={"SMTPFAULT_ADMIN_TOKEN": "wrong"}), "pong\n")  # the flag wins
    fails(ctl(srv, "--token", "wrong", "ping", env={"SMTPFAULT_ADMIN_TOKEN": "t0ken"}), 1, "(unauthorized)")


def test_admin_address_from_the_environment(admin_srv):
    host, port = admin_srv.admin_address
    ok(ctl(None, "ping", env={"SMTPFAULT_ADMIN": f"{host}:{port}"}), "pong\n")
    ok(ctl(None, "ping", env={"SMTPFAULT_ADMIN": f"unix:{admin_srv.admin_unix}"}), "pong\n")
    # --admin wins over the variable.
    ok(ctl(None, "--admin", f"unix:{admin_srv.admin_unix}", "ping",
           env={"SMTPFAULT_ADMIN": f"127.0.0.1:{free_port()}"}), "pong\n")
    fails(ctl(None, "ping", env={"SMTPFAULT_ADMIN": f"127.0.0.1:{free_port()}"}), 1, "cannot reach the admin socket")


@pytest.mark.parametrize("args,message", [
    ([], "Usage: smtpfault ctl [--admin ADDR] [--token TOKEN] [--scope ID] [--json] COMMAND [ARGS]"),
    (["bogus"], "smtpfault ctl: unknown command 'bogus'"),
    (["--bogus", "ping"], "smtpfault ctl: unknown option '--bogus'"),
    (["ping", "extra"], "smtpfault ctl: ping takes no arguments"),
    (["stats", "--json"], "smtpfault ctl: stats takes no arguments"),
    (["load"], "smtpfault ctl: load FILE"),
    (["load", "a.json", "b.json"], "smtpfault ctl: load FILE"),
    (["session"], "smtpfault ctl: session ID (a number from `ctl sessions`)"),
    (["session", "abc"], "smtpfault ctl: session ID"),
    (["session", "0"], "smtpfault ctl: session ID"),
    (["message"], "smtpfault ctl: message ID [--raw]"),
    (["message", "X", "--rawest"], "smtpfault ctl: message ID [--raw]"),
    (["delete", "X", "--raw"], "smtpfault ctl: delete ID"),
    (["messages", "--timeout", "5"], "smtpfault ctl: messages: --timeout is not an option here"),
    (["wait", "--limit", "5"], "smtpfault ctl: wait: --limit is not an option here"),
    (["wait", "--timeout", "soon"], "smtpfault ctl: wait: --timeout needs a number"),
    (["wait", "--timeout", "-1"], "smtpfault ctl: wait: --timeout needs a number"),
    (["messages", "--nope"], "smtpfault ctl: messages: unknown option '--nope'"),
    # getopt_long would take these prefixes of --timeout and --admin: a mistyped option is an error
    (["wait", "--tim", "5"], "smtpfault ctl: wait: unknown option '--tim'"),
    (["--adm", "127.0.0.1:2580", "ping"], "smtpfault ctl: unknown option '--adm'"),
    (["messages", "extra"], "smtpfault ctl: messages: unexpected argument 'extra'"),
    (["raw", "not json"], "smtpfault ctl: raw '{\"cmd\": \"ping\"}'"),
    (["raw", "[1]"], "smtpfault ctl: raw '{\"cmd\": \"ping\"}'"),
    (["--admin", "nonsense", "ping"], "smtpfault ctl: --admin nonsense: 'nonsense' is not HOST:PORT"),
    (["--admin", "off", "ping"], "smtpfault ctl: --admin off: off is not an address"),
])
def test_usage_errors_exit_2(args, message):
    proc = ctl(None, *args)
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert message in proc.stderr, proc.stderr
    assert proc.stdout == ""


def test_help():
    proc = ctl(None, "--help")
    assert proc.returncode == 0 and proc.stdout.startswith("Usage: smtpfault ctl")
    for word in ("ping", "load FILE", "messages", "message ID [--raw]", "wait", "events", "reset", "raw JSON"):
        assert word in proc.stdout
