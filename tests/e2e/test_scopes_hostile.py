"""Scopes attacked: ending a scope (scope.delete, its creator closing, SIGTERM) while its sessions are in
every state a fault can hold them in; requests pipelined behind a wait that the end of a scope answers;
ports of a --scope-ports range under pressure; many admin clients creating scopes and leaving at once; a
small descriptor limit. Every server must exit 0 with no sanitizer report (the harness checks at teardown).
"""
import os
import re
import signal
import smtplib
import socket
import ssl
import subprocess
import threading
import time
from datetime import datetime

import pytest

from harness.admin import ctl_argv
from harness.clients import tls_context
from harness.env import IO_TIMEOUT, SLOW, poll
from harness.server import Server
from harness.smtp import RawClient, transaction
from test_scopes import _free_range, open_fds, refused

STATES_PROFILE = {
    "name": "every-wait",
    "rules": [
        {"when": {"stage": "ehlo", "helo": "hang.example"}, "do": {"hang": True}},
        {"when": {"stage": "ehlo", "helo": "delay.example"}, "do": {"delay": "10m"}},
        {"when": {"stage": "ehlo", "helo": "drip.example"}, "do": {"drip": 1}},
        {"when": {"stage": "data", "sender": "reset@*"},
         "do": {"reply": "354 End data with <CR><LF>.<CR><LF>", "close": "reset"}},
        {"when": {"stage": "connect", "listener": "submission"}, "do": {"blackhole": True}},
    ],
}


def sessions_in_every_state(sc):
    """Clients of scope sc (an answer of scope.create) held in each state: mid-DATA, a delay, a drip, a hang,
    a pending reset, an unfinished TLS handshake. Returns them, each with the state it is in."""
    port = sc["listeners"]["smtp"]["port"]
    clients = []

    def client(helo):
        c = RawClient("127.0.0.1", port)
        c.expect(220)
        c.send(f"EHLO {helo}\r\n")
        return c

    mid_data = client("data.example")
    mid_data.expect(250)
    mid_data.cmd("MAIL FROM:<a@example.test>", 250)
    mid_data.cmd("RCPT TO:<b@example.test>", 250)
    mid_data.cmd("DATA", 354)
    mid_data.send(b"Subject: half\r\n\r\nhalf a message")
    clients.append(("mid-DATA", mid_data))
    for helo in ("hang.example", "delay.example"):
        clients.append((helo, client(helo)))
    drip = client("drip.example")
    assert drip.sock.recv(1) == b"2"  # the drip has started
    clients.append(("drip", drip))
    reset = client("reset.example")
    reset.expect(250)
    reset.cmd("MAIL FROM:<reset@example.test>", 250)
    reset.cmd("RCPT TO:<b@example.test>", 250)
    reset.cmd("DATA", 354)  # the reset now waits for the message
    clients.append(("reset pending", reset))
    tls = socket.create_connection(("127.0.0.1", sc["listeners"]["smtps"]["port"]), timeout=IO_TIMEOUT)
    tls.send(b"\x16\x03\x01\x00\xff\x01")  # the start of a ClientHello, never finished
    clients.append(("TLS handshake", tls))
    return clients


def assert_all_closed(clients, timeout=15 * SLOW):
    for state, c in clients:
        sock = c if isinstance(c, socket.socket) else c.sock
        sock.settimeout(timeout)
        try:
            while sock.recv(65536):
                pass
        except ConnectionResetError:
            pass
        except socket.timeout:
            raise AssertionError(f"the session {state} was not closed when its scope ended")
        finally:
            sock.close()


@pytest.mark.parametrize("how", ["delete", "creator-closes", "sigterm"])
def test_scope_ends_with_sessions_in_every_state(server_factory, how):
    srv = server_factory()
    creator = srv.admin()
    with srv.admin() as admin:
        creator.ok("ping"), admin.ok("ping")  # both accepted
        before = open_fds(srv.pid)
        sc = creator.ok("scope.create", profile=STATES_PROFILE)
        clients = sessions_in_every_state(sc)
        poll(lambda: admin.ok("stats", scope=sc["scope"])["sessions"]["live"] == 6, 10 * SLOW,
             message="six live sessions in the scope")
        with pytest.raises(socket.timeout):
            socket.create_connection(("127.0.0.1", sc["listeners"]["submission"]["port"]), timeout=0.5).close()
        if how == "delete":
            admin.ok("scope.delete", scope=sc["scope"])
        elif how == "creator-closes":
            creator.close()
        else:
            srv.signal()
        assert_all_closed(clients)
        if how != "sigterm":
            poll(lambda: admin.ok("scope.list")["scopes"] == [], 10 * SLOW, message="the scope ended")
            poll(lambda: open_fds(srv.pid) <= before, 10 * SLOW,
                 message=lambda: f"the scope's descriptors released ({open_fds(srv.pid)} open, {before} before)")
            assert refused(sc["listeners"]["smtp"]["port"]) and refused(sc["listeners"]["submission"]["port"])
    creator.close()
    assert srv.stop() == 0
    srv.check_clean_exit()


def test_refused_listener_keeps_its_port(server_factory):
    """A scope whose listener refuses (a refuse rule) still owns its --scope-ports port: another scope must not
    take it, or the first could never listen again and the second would get its mail."""
    base = _free_range(2)
    srv = server_factory("--scope-ports", f"{base}-{base + 1}")
    refuse = {"rules": [{"when": {"stage": "connect", "listener": "smtp"}, "do": {"refuse": True}}]}
    with srv.admin() as admin:
        a = admin.ok("scope.create", listeners=["smtp"], profile=refuse)
        assert a["listeners"]["smtp"]["port"] == base and refused(base)
        b = admin.ok("scope.create", listeners=["smtp"])
        admin.ok("scope.delete", scope=b["scope"])
        c = admin.call("scope.create", listeners=["smtp"])
        assert c["ok"] is True and c["listeners"]["smtp"]["port"] == base + 1, c
        admin.ok("profile.clear", scope=a["scope"])
        stats = admin.ok("stats", scope=a["scope"])
        assert stats["listeners"]["smtp"] == {"address": f"127.0.0.1:{base}", "mode": "accept"}, stats
        with RawClient("127.0.0.1", base) as client:
            client.expect(220)
        assert admin.ok("stats", scope=a["scope"])["sessions"]["total"] == 1
        assert admin.ok("stats", scope=c["scope"])["sessions"]["total"] == 0


def test_half_made_scope_releases_its_ports_and_id(server_factory):
    """--scope-ports with room for one listener and a scope asking for three: the one opened is closed again,
    the id is not used up, and a scope of one listener then takes that port."""
    base = _free_range(4)
    srv = server_factory("--scope-ports", f"{base}-{base + 3}")
    with srv.admin() as admin:
        first = admin.ok("scope.create")
        assert first["scope"] == "s1"
        before = open_fds(srv.pid)
        for _ in range(5):
            admin.error("scope.create", "unavailable")
        assert open_fds(srv.pid) == before
        one = admin.ok("scope.create", listeners=["smtps"])
        assert one["scope"] == "s2" and one["listeners"]["smtps"]["port"] in range(base, base + 4)
        admin.error("scope.create", "unavailable", listeners=["smtp"])
        admin.ok("scope.delete", scope="s1")
        again = admin.ok("scope.create")
        assert again["scope"] == "s3"
        assert sorted(l["port"] for l in again["listeners"].values()) == sorted(
            l["port"] for l in first["listeners"].values())


def test_requests_behind_a_wait_run_when_its_scope_ends(server):
    """A client waits on a scope another client owns, with requests pipelined behind the wait that delete,
    create and wait on scopes; it also owns a scope, and a subscriber of the ending scope owns one too. The
    owner leaves: every queued request is answered in order, and the scopes of clients that go end."""
    owner = server.admin()
    target = owner.ok("scope.create", listeners=["smtp"])["scope"]
    with server.admin() as waiter, server.admin() as watcher:
        mine = waiter.ok("scope.create", listeners=["smtp"])["scope"]
        other = watcher.ok("scope.create", listeners=["smtp"], keep=False)["scope"]
        watchers_own = watcher.ok("scope.create", listeners=["smtp"])["scope"]
        watcher.ok("events.subscribe", scope=target)
        lines = [
            {"id": 1, "cmd": "messages.wait", "scope": target, "timeout": 60},
            {"id": 2, "cmd": "scope.delete", "scope": mine},
            {"id": 3, "cmd": "scope.create", "listeners": ["smtp"]},
            {"id": 4, "cmd": "messages.wait", "scope": target, "timeout": 60},
            {"id": 5, "cmd": "scope.delete", "scope": other},
            {"id": 6, "cmd": "ping"},
        ]
        waiter.send(b"".join(waiter.encode(o) + b"\n" for o in lines))
        poll(lambda: "admin" in server.log(), 1)
        owner.close()
        answers = [waiter.response(timeout=20 * SLOW) for _ in lines]
        assert [a["id"] for a in answers] == [1, 2, 3, 4, 5, 6], answers
        assert answers[0]["error"]["code"] == "not_found" and answers[3]["error"]["code"] == "not_found"
        assert answers[1]["deleted"] == mine and answers[2]["ok"] is True and answers[4]["deleted"] == other
        assert answers[5]["ok"] is True
        end = watcher.next_event(timeout=20 * SLOW)
        while end.get("event") != "scope_end":
            end = watcher.next_event(timeout=20 * SLOW)
        assert end == {"event": "scope_end", "scope": target}
        with pytest.raises(ConnectionError):
            watcher.read_line(timeout=20 * SLOW)
        # The server hung up on the subscriber: the scope it created ends with it.
        poll(lambda: [s["scope"] for s in waiter.ok("scope.list")["scopes"]] == [answers[2]["scope"]], 10 * SLOW,
             message=f"only {answers[2]['scope']} left ({watchers_own} ended with its creator)")
    with server.admin() as admin:
        poll(lambda: admin.ok("scope.list")["scopes"] == [], 10 * SLOW, message="every scope ended")


def test_waiting_on_own_scope_then_closing(server):
    """Connections wait on the scope they created, with more requests queued behind the wait, and close: a
    FIN is a half-close, whose requests are still answered, so each scope ends when its wait has answered."""
    for _ in range(20):
        c = server.admin()
        sc = c.ok("scope.create", listeners=["smtp"])["scope"]
        c.send(c.encode({"cmd": "messages.wait", "scope": sc, "timeout": 1}) + b"\n"
               + c.encode({"cmd": "scope.create"}) + b"\n" + c.encode({"cmd": "scope.delete", "scope": sc}) + b"\n")
        c.close()
    with server.admin() as admin:
        poll(lambda: admin.ok("scope.list")["scopes"] == [], 10 * SLOW, message="every scope ended")


def test_many_admin_clients_create_scopes_and_leave_at_once(server):
    """64 admin clients (the most the socket serves) each create three scopes, some waiting on another's,
    then all close at once: every scope ends and the descriptors come back."""
    before = open_fds(server.pid)
    clients = [server.admin() for _ in range(64)]
    made = []
    for c in clients:
        made += [c.ok("scope.create", listeners=["smtp"])["scope"] for _ in range(3)]
    for i, c in enumerate(clients):
        c.send(c.encode({"cmd": "messages.wait", "scope": made[(i * 3 + 7) % len(made)], "timeout": 60}) + b"\n"
               + c.encode({"cmd": "scope.create"}) + b"\n")
    for c in clients:
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        c.close()
    def admin_again():
        try:
            a = server.admin()
            if a.call("ping")["ok"]:
                return a
            a.close()
        except (AssertionError, ConnectionError, OSError):
            pass
        return None

    with poll(admin_again, 20 * SLOW, message="the admin socket serves again") as admin:
        poll(lambda: admin.ok("scope.list")["scopes"] == [], 20 * SLOW, message="every scope ended")
        poll(lambda: open_fds(server.pid) <= before + 1, 20 * SLOW,
             message=lambda: f"descriptors back to {before} + this client ({open_fds(server.pid)} open)")


def test_scope_limit_under_a_small_descriptor_limit(tmp_path):
    """With ulimit -n 200, scopes and SMTP connections share what the reserve leaves. SMTP clients first take
    every connection there is (and more, refused with 421): scope.create is then unavailable, saying why,
    never a half-made scope. Once they leave, scopes are created until refused, each blackholing its three
    listeners (the most descriptors a scope holds): the refusal is the same clear unavailable, every scope
    made still blackholes, and the server's own listener and the first scope still greet."""
    blackhole = {"rules": [{"when": {"stage": "connect"}, "do": {"blackhole": True}}]}
    s = Server(tmp_path / "lowfd")
    s.argv = ["prlimit", "--nofile=200:200", "--"] + s.argv
    s.start()
    conns = []
    try:
        with s.admin() as admin:
            first = admin.ok("scope.create", listeners=["smtp"])
            for _ in range(120):
                for port in (s.port, first["listeners"]["smtp"]["port"]):
                    try:
                        conns.append(socket.create_connection(("127.0.0.1", port), timeout=5))
                    except OSError:
                        pass
            poll(lambda: admin.ok("stats")["capacity"]["connections"] <= len(admin.ok("sessions.list")["live"])
                 + len(admin.ok("sessions.list", scope=first["scope"])["live"]), 20 * SLOW,
                 message="every connection taken")
            r = admin.call("scope.create", profile=blackhole)
            assert r["error"]["code"] == "unavailable", r
            assert "no descriptors left for another scope" in r["error"]["message"], r
            assert [x["scope"] for x in admin.ok("scope.list")["scopes"]] == [first["scope"]]
            for c in conns:
                c.close()
            conns.clear()
            poll(lambda: admin.ok("stats")["sessions"]["live"] == 0, 20 * SLOW, message="the clients gone")
            made = []
            while True:
                r = admin.call("scope.create", profile=blackhole)
                if not r["ok"]:
                    assert r["error"]["code"] == "unavailable", r
                    assert "no descriptors left for another scope" in r["error"]["message"], r
                    break
                made.append(r)
                assert len(made) < 64
            assert made, s.log()
            for r in made:
                assert admin.ok("stats", scope=r["scope"])["listeners"]["smtps"]["mode"] == "blackhole"
            for port in (s.port, first["listeners"]["smtp"]["port"]):
                def greets():
                    with RawClient("127.0.0.1", port) as c:
                        return c.reply().code == 220
                poll(greets, 20 * SLOW, message=f"a greeting on port {port}")
        assert s.stop() == 0
        s.check_clean_exit()
    finally:
        for c in conns:
            c.close()
        s.kill()


def test_ctl_hold_ends_with_the_server(server):
    """ctl scope create without --keep, stdin a pipe: the server stopping ends ctl (it says why)."""
    proc = subprocess.Popen(ctl_argv(server, "scope", "create", "--listeners", "smtp"), stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert '"scope"' in proc.stdout.readline()
        assert server.stop() == 0
        out, err = proc.communicate(timeout=20 * SLOW)
        assert proc.returncode != 0 and "the server closed the connection" in err, (proc.returncode, err)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    server.check_clean_exit()


def test_sigterm_again_while_the_server_exits(server_factory):
    """SIGTERM with scopes, sessions and messages, then SIGTERM again and again while the process winds
    down (a second docker stop, a test teardown): it still exits 0."""
    srv = server_factory()
    admin = srv.admin()
    for _ in range(30):
        sc = admin.ok("scope.create", listeners=["smtp"])
        with RawClient("127.0.0.1", sc["listeners"]["smtp"]["port"]) as c:
            c.greet()
            transaction(c, "a@example.test", ["b@example.test"], b"Subject: x\r\n\r\n" + (b"y" * 900 + b"\r\n") * 100)
    srv.signal()
    srv.wait_for_log(r"info: stopped: ", timeout=20 * SLOW)
    deadline = time.monotonic() + 20 * SLOW
    while srv.proc.poll() is None and time.monotonic() < deadline:
        try:
            srv.proc.send_signal(signal.SIGTERM)
        except ProcessLookupError:
            break
        time.sleep(0.001)
    admin.close()
    assert srv.wait() == 0, srv.log()[-2000:]
    srv.check_clean_exit()


def test_owner_subscriber_that_stops_reading_ends_its_scope_mid_session(server):
    """The creator of a scope subscribes to its events and stops reading; a client of the scope pipelines
    commands in a transaction until the subscriber is dropped (16 MiB unread), which ends the scope from
    inside that client's own session: the client gets a 421 or a close, and the server goes on."""
    owner = server.admin(rcvbuf=4096)
    sc = owner.ok("scope.create", listeners=["smtp"])
    owner.ok("events.subscribe", scope=sc["scope"])
    client = RawClient("127.0.0.1", sc["listeners"]["smtp"]["port"])
    client.greet()
    client.cmd("MAIL FROM:<a@example.test>", 250)
    done = threading.Event()
    received = []

    def reader():
        client.sock.settimeout(60 * SLOW)
        try:
            while True:
                chunk = client.sock.recv(1 << 20)
                if not chunk:
                    break
                received.append(len(chunk))
        except OSError:
            pass
        done.set()

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    try:
        for _ in range(100):
            client.sock.sendall(b"NOOP\r\n" * 4000)
    except OSError:
        pass  # the session ended under us
    assert done.wait(60 * SLOW), "the scope's session was not closed"
    with server.admin() as admin:
        poll(lambda: admin.ok("scope.list")["scopes"] == [], 10 * SLOW, message="the scope ended")
        assert admin.ok("ping")["ok"]
    client.close()
    owner.close()


def test_scope_ends_while_messages_are_committed_to_the_store_dir(server):
    """Clients end their messages and the scope is deleted (or its creator leaves) before the --store-dir
    writes finish, while another client waits on the scope: the waits answer, nothing is kept, no leak."""
    for round_ in range(6):
        creator = server.admin()
        sc = creator.ok("scope.create", listeners=["smtp"])
        port = sc["listeners"]["smtp"]["port"]
        waiter = server.admin()
        waiter.send_obj({"id": 1, "cmd": "messages.wait", "scope": sc["scope"], "timeout": 60})
        clients = []
        for i in range(10):
            c = RawClient("127.0.0.1", port)
            c.greet()
            c.cmd("MAIL FROM:<a@example.test>", 250)
            c.cmd("RCPT TO:<b@example.test>", 250)
            c.cmd("DATA", 354)
            clients.append(c)
        for c in clients:
            c.send(b"Subject: race\r\n\r\n" + b"x" * 50000 + b"\r\n.\r\n")
        if round_ % 2:
            creator.close()
        else:
            with server.admin() as admin:
                admin.ok("scope.delete", scope=sc["scope"])
            creator.close()
        answer = waiter.response(timeout=20 * SLOW)
        assert answer["id"] == 1 and (answer["ok"] or answer["error"]["code"] == "not_found"), answer
        waiter.close()
        for c in clients:
            c.read_until_closed(timeout=20 * SLOW)
            c.close()
    with server.admin() as admin:
        poll(lambda: admin.ok("scope.list")["scopes"] == [] and admin.ok("stats")["sessions"]["live"] == 0,
             10 * SLOW, message="every scope and session gone")
        assert admin.ok("messages.list")["messages"] == []


def test_store_pool_shared_by_scopes(server_factory):
    """--store-max-messages 2 shared by three scopes: evictions cross scopes and are counted in the scope that
    lost the message; a wait in one scope with a "since" id of another's message, a delete and a clear in one
    scope while another waits: each wait answers with its own scope's mail only."""
    srv = server_factory("--store-max-messages", "2")
    with srv.admin() as admin, srv.admin() as waiter:
        a, b, c = (admin.ok("scope.create", listeners=["smtp"]) for _ in range(3))

        def send(sc, subject):
            with RawClient("127.0.0.1", sc["listeners"]["smtp"]["port"]) as cl:
                cl.greet()
                return transaction(cl, "s@example.test", [f"{subject}@example.test"], b"Subject: s\r\n\r\nbody\r\n")

        first_a = send(a, "a1")
        send(b, "b1")
        waiter.send_obj({"id": 7, "cmd": "messages.wait", "scope": c["scope"], "since": first_a, "timeout": 60})
        send(a, "a2")  # evicts a1
        assert admin.ok("stats", scope=a["scope"])["messages"]["evicted"] == 1
        admin.ok("messages.clear", scope=b["scope"])
        admin.ok("messages.delete", scope=a["scope"], message=admin.ok("messages.list", scope=a["scope"])["messages"][0]["id"])
        send(c, "c1")
        got = waiter.response(timeout=20 * SLOW)
        assert got["id"] == 7 and got["message"]["recipients"] == ["c1@example.test"], got
        waiter.send_obj({"id": 8, "cmd": "messages.wait", "scope": b["scope"], "since": first_a, "timeout": 60})
        send(a, "a3")
        send(c, "c2")  # evicts c1 (a3 and c2 remain)
        send(b, "b2")
        got = waiter.response(timeout=20 * SLOW)
        assert got["id"] == 8 and got["message"]["recipients"] == ["b2@example.test"], got
        total = sum(admin.ok("stats", scope=s["scope"])["messages"]["kept"] for s in (a, b, c))
        assert total == 2 and admin.ok("stats")["messages"]["kept"] == 0


@pytest.mark.parametrize("stdin", ["devnull", "file", "closed-pipe"])
def test_ctl_hold_with_every_stdin(server, tmp_path, stdin):
    """ctl scope create without --keep: /dev/null or a file as stdin is not watched (the scope lives until
    SIGTERM); a pipe already at EOF ends it at once. Either way ctl exits 0 and the scope ends with it."""
    f = tmp_path / "in.txt"
    f.write_text("x\n")
    src = {"devnull": subprocess.DEVNULL, "file": open(f), "closed-pipe": subprocess.PIPE}[stdin]
    proc = subprocess.Popen(ctl_argv(server, "scope", "create", "--listeners", "smtp"), stdin=src,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        if stdin == "closed-pipe":
            proc.stdin.close()
        answer = proc.stdout.readline()
        assert '"scope"' in answer, proc.stderr.read()
        with server.admin() as admin:
            if stdin != "closed-pipe":
                time.sleep(0.2 * SLOW)  # a watched stdin at EOF would have ended ctl by now
                assert proc.poll() is None
                assert len(admin.ok("scope.list")["scopes"]) == 1
                proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=20 * SLOW) == 0, proc.stderr.read()
            poll(lambda: admin.ok("scope.list")["scopes"] == [], 10 * SLOW, message="the held scope ended")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if stdin == "file":
            src.close()


def test_admin_arguments_of_every_shape_for_scope(server_factory, short_tmp):
    """"scope" of every wrong type and size on every command that takes it, and on those that do not; scopes
    created over the unix socket with a token; a subscriber deleting the scope it watches."""
    srv = server_factory("--admin", f"unix:{short_tmp}/a.sock", "--admin-token", "t0ken")
    with srv.admin(unix=True, token="t0ken") as admin:
        sc = admin.ok("scope.create", listeners=["smtp"])["scope"]
        for cmd in ("stats", "profile.get", "profile.clear", "messages.list", "messages.clear", "sessions.list",
                    "reset", "tls.ca", "scope.delete"):
            for bad in (1, 1.5, None, True, [], {}, [sc], {"scope": sc}):
                admin.error(cmd, "bad_argument", scope=bad)
            for missing in ("", "s0", "s" + "9" * 30, "S1", sc + " ", "x" * 100000, "\u00e9", sc.upper()):
                admin.error(cmd, "not_found", scope=missing)
        for cmd in ("ping", "version", "scope.create", "scope.list"):
            admin.error(cmd, "bad_argument", scope=sc)
        with srv.admin(unix=True) as stranger:
            stranger.error("scope.create", "unauthorized")
        admin.ok("events.subscribe", scope=sc)
        admin.send_obj({"id": 5, "cmd": "scope.delete", "scope": sc})
        end = admin.read_json(timeout=20 * SLOW)
        assert end == {"event": "scope_end", "scope": sc}, end
        with pytest.raises(ConnectionError):
            while True:
                admin.read_line(timeout=20 * SLOW)
    with srv.admin(token="t0ken") as admin:
        assert admin.ok("scope.list")["scopes"] == []


def deleted_with_a_stuck_client(admin):
    """A scope whose client pipelines commands and reads none of the replies (the server's output to it is
    stuck), then deleted: the client and the id of its session."""
    sc = admin.ok("scope.create", listeners=["smtp"])
    client = RawClient("127.0.0.1", sc["listeners"]["smtp"]["port"], rcvbuf=4096)
    client.greet()
    client.sock.settimeout(2 * SLOW)
    try:
        for _ in range(100):
            client.sock.sendall(b"EHLO x\r\n" * 5000)
    except socket.timeout:
        pass  # the server stopped reading: its replies wait for us
    sid = admin.ok("sessions.list", scope=sc["scope"])["live"][0]["id"]
    admin.ok("scope.delete", scope=sc["scope"])
    return client, sid


def test_scope_end_closes_a_session_whose_client_does_not_read(server):
    """A client of the scope pipelines commands and reads none of the replies, so the server's output to it
    is stuck: ending the scope must still close that session (and release its descriptor), not leave it
    waiting for the client to read forever."""
    with server.admin() as admin:
        client, sid = deleted_with_a_stuck_client(admin)
        server.wait_for_log(rf"#{sid} close ", timeout=20 * SLOW)
        client.close()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_drain_is_the_same_in_a_scope(server, sig):
    """SIGTERM or SIGHUP with a message half sent on the server's own listener and in a scope: both clients
    finish their message (250), then get the 421, and the server exits 0 promptly."""
    admin = server.admin()
    sc = admin.ok("scope.create", listeners=["smtp"])
    clients = []
    for port in (server.port, sc["listeners"]["smtp"]["port"]):
        c = RawClient("127.0.0.1", port)
        c.greet()
        c.cmd("MAIL FROM:<a@example.test>", 250)
        c.cmd("RCPT TO:<b@example.test>", 250)
        c.cmd("DATA", 354)
        c.send(b"Subject: drain\r\n\r\nfirst half\r\n")
        clients.append(c)
    started = time.monotonic()
    server.signal(sig)
    server.wait_for_log(r"received SIG")
    for c in clients:
        c.send(b"second half\r\n.\r\n")
        assert c.expect(250).code == 250
        c.send(b"NOOP\r\n")
        assert c.reply().code == 421
        c.read_until_closed()
        c.close()
    admin.close()
    assert server.wait() == 0
    assert time.monotonic() - started < 5 * SLOW  # well before the drain period's end
    server.check_clean_exit()


def test_scope_create_behind_a_wait_gets_the_ended_scopes_ports(server_factory):
    """--scope-ports with room for one scope: a client waits on it with a scope.create queued behind; when the
    scope ends, the queued create runs at once and must find the ports the ended scope has given back."""
    base = _free_range(3)
    srv = server_factory("--scope-ports", f"{base}-{base + 2}")
    owner = srv.admin()
    first = owner.ok("scope.create")
    with srv.admin() as waiter:
        waiter.send(waiter.encode({"id": 1, "cmd": "messages.wait", "scope": first["scope"], "timeout": 60}) + b"\n"
                    + waiter.encode({"id": 2, "cmd": "scope.create"}) + b"\n")
        owner.close()
        assert waiter.response(timeout=20 * SLOW)["error"]["code"] == "not_found"
        again = waiter.response(timeout=20 * SLOW)
        assert again["id"] == 2 and again["ok"] is True, again
        assert sorted(l["port"] for l in again["listeners"].values()) == [base, base + 1, base + 2]


CHAOS_SECONDS = float(os.environ.get("SMTPFAULT_SCOPE_CHAOS_SECONDS", "8"))
CHAOS_PROFILES = [
    None,
    {"rules": [{"when": {"stage": "connect", "listener": "smtp", "until": "300ms"}, "do": {"refuse": True}}]},
    {"rules": [{"when": {"stage": "connect", "listener": "smtp", "after": "200ms", "until": "600ms"},
                "do": {"blackhole": True}}]},
    {"rules": [{"when": {"stage": "rcpt"}, "do": {"delay": "300ms"}}]},
    {"rules": [{"when": {"stage": "data_end"}, "do": {"drip": 20}}]},
    {"rules": [{"when": {"stage": "data"}, "do": {"reply": "354 go on", "close": "reset"}}]},
    {"rules": [{"when": {"stage": "tls_handshake"}, "do": {"delay": "200ms"}}]},
    {"rules": [{"when": {"stage": "mail"}, "do": {"hang": True}}]},
]


def test_chaos_of_scopes_traffic_and_admin(server_factory):
    """For a few seconds (SMTPFAULT_SCOPE_CHAOS_SECONDS): scopes created with every kind of fault and ended
    by delete or by their creator leaving, SMTP clients (plain, STARTTLS, implicit TLS) on whatever scope
    is alive, admin clients waiting on and subscribing to them. No crash, every session and scope gone at the
    end, and a clean exit (the sanitizers have their say at teardown)."""
    import random

    base = _free_range(40)
    srv = server_factory("--scope-ports", f"{base}-{base + 39}", "--idle-timeout", "3")
    stop = time.monotonic() + CHAOS_SECONDS * SLOW
    live = []
    lock = threading.Lock()
    errors = []

    def creator(seed):
        rnd = random.Random(seed)
        while time.monotonic() < stop:
            a = srv.admin()
            try:
                mine = []
                for _ in range(rnd.randint(1, 3)):
                    args = {"listeners": rnd.sample(["smtp", "submission", "smtps"], rnd.randint(1, 3))}
                    p = rnd.choice(CHAOS_PROFILES)
                    if p:
                        args["profile"] = p
                    r = a.call("scope.create", **args)
                    if r["ok"]:
                        mine.append(r)
                        with lock:
                            live.append(r)
                    else:
                        assert r["error"]["code"] in ("unavailable", "too_many_scopes"), r
                time.sleep(rnd.random() * 0.3)
                for r in mine:
                    with lock:
                        live.remove(r)
                    if rnd.random() < 0.5:
                        a.ok("scope.delete", scope=r["scope"])
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(repr(e))
            finally:
                a.close()

    def pick_live(rnd):
        """A live scope, or None after a short pause when there is none."""
        with lock:
            sc = rnd.choice(live) if live else None
        if sc is None:
            time.sleep(0.01)
        return sc

    def mailer(seed):
        rnd = random.Random(seed)
        while time.monotonic() < stop:
            sc = pick_live(rnd)
            if sc is None:
                continue
            name = rnd.choice(list(sc["listeners"]))
            port = sc["listeners"][name]["port"]
            try:
                if name == "smtps":
                    c = smtplib.SMTP_SSL("127.0.0.1", port, timeout=2, context=tls_context())
                else:
                    c = smtplib.SMTP("127.0.0.1", port, timeout=2)
                    if name == "submission" or rnd.random() < 0.3:
                        c.starttls(context=tls_context())
                if name != "smtp":
                    c.login("u", "p")
                c.sendmail("a@example.test", ["b@example.test"], b"Subject: chaos\r\n\r\n" + b"x" * rnd.randint(0, 20000))
                c.quit()
            except (OSError, smtplib.SMTPException, ssl.SSLError):
                pass  # the scope ended, or its fault fired: expected

    def watcher(seed):
        rnd = random.Random(seed)
        while time.monotonic() < stop:
            sc = pick_live(rnd)
            if sc is None:
                continue
            try:
                with srv.admin() as a:
                    if rnd.random() < 0.5:
                        a.call("messages.wait", scope=sc["scope"], timeout=0.5, read_timeout=10 * SLOW)
                    else:
                        a.call("events.subscribe", scope=sc["scope"])
                        a.read_line(timeout=0.3)
            except (OSError, TimeoutError, ConnectionError):
                pass

    threads = [threading.Thread(target=f, args=(i,)) for i, f in
               enumerate([creator, creator, creator, mailer, mailer, mailer, mailer, watcher, watcher])]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60 * SLOW)
    assert not any(t.is_alive() for t in threads)
    assert not errors, errors[:3]
    with srv.admin() as a:
        poll(lambda: a.ok("scope.list")["scopes"] == [], 20 * SLOW, message="every scope ended")
        poll(lambda: a.ok("stats")["sessions"]["live"] == 0, 20 * SLOW, message="every session closed")


def test_ctl_hold_sigterm_right_after_the_answer(server):
    """A script reads ctl scope create's answer and at once sends SIGTERM: ctl ends the scope and exits 0
    (its handler must be in place before the answer is printed)."""
    for _ in range(10):
        proc = subprocess.Popen(ctl_argv(server, "scope", "create", "--listeners", "smtp"), stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            assert '"scope"' in proc.stdout.readline()
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=20 * SLOW) == 0, proc.stderr.read()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stdin.close()
    with server.admin() as admin:
        poll(lambda: admin.ok("scope.list")["scopes"] == [], 10 * SLOW, message="every held scope ended")


def test_ctl_hold_leaves_a_shared_stdin_pipe_blocking(server):
    """ctl scope create without --keep watches its standard input; a pipe it shares with the script that
    started it must be left as it was (blocking) when ctl ends, or the script's next read fails with EAGAIN."""
    r, w = os.pipe()
    try:
        proc = subprocess.Popen(ctl_argv(server, "scope", "create", "--listeners", "smtp"), stdin=r,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert '"scope"' in proc.stdout.readline()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20 * SLOW) == 0, proc.stderr.read()
        assert os.get_blocking(r), "ctl left the shared standard input non-blocking"
    finally:
        os.close(r)
        os.close(w)


def test_stop_at_once_closes_the_sessions_of_ended_scopes(server):
    """A scope is deleted while its client reads nothing (its session waits out the end grace); a SIGTERM sent
    twice, "closing every connection now", must close that session too, not leave it to the grace timer."""
    with server.admin() as admin:
        client, sid = deleted_with_a_stuck_client(admin)
    server.signal()
    server.wait_for_log(r"received SIGTERM: stopping")
    server.signal()
    assert server.wait() == 0
    client.close()
    stamp = lambda pattern: datetime.fromisoformat(re.search(rf"^(\S+)Z .*{pattern}", server.log(), re.M)[1])  # noqa: E731
    took = (stamp(rf"#{sid} close ") - stamp(r"scope s1 ended")).total_seconds()
    assert took < 4.5, f"the session closed {took:.1f} s after its scope ended: at the end grace, not at the stop"
    server.check_clean_exit()
