"""Scopes: virtual servers inside one smtpfault, each with its own listeners, profile, messages, sessions and
counters (docs/scopes.md). Real clients (Nodemailer, PHPMailer, smtplib, swaks) send through scopes with
conflicting profiles at the same time; each must see only its own behaviour, and the server's own listeners
nothing of it. Then the lifetime rules (a scope ends with the admin connection that created it unless kept),
port ranges, limits, bad arguments, and 1,000 create/delete cycles with traffic and no descriptor growth.
"""
import json
import os
import socket
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from harness.admin import ctl, ctl_argv
from harness.clients import nodemailer, phpmailer, smtplib_client, swaks, swaks_error_replies, swaks_errors
from harness.env import SLOW, nofile_limit, poll
from harness.smtp import make_message

GREETING_421 = "server-421-try-again-later"
TLS_ALERT = "tls-handshake-failure"


class Scope:
    """A scope as the client runners see a server: listener(name) gives {"host", "port", "address"}."""

    def __init__(self, answer):
        self.id = answer["scope"]
        self.listeners = answer["listeners"]
        self.answer = answer

    def listener(self, name="smtp"):
        return self.listeners[name]

    def port(self, name="smtp"):
        return self.listeners[name]["port"]


def create(admin, **args):
    return Scope(admin.ok("scope.create", **args))


def refused(port, host="127.0.0.1"):
    try:
        socket.create_connection((host, port), timeout=5).close()
    except ConnectionRefusedError:
        return True
    return False


def smtplib_send(target, rcpt, subject, listener="smtp", tls=None):
    with smtplib_client(target, listener=listener, tls=tls) as c:
        if listener != "smtp":
            c.login("user", "password")  # submission and smtps require AUTH; without --user any login passes
        c.sendmail("sender@example.test", [rcpt], make_message(subject, "body"))


def session_ids(admin, scope=None):
    args = {"scope": scope} if scope else {}
    r = admin.ok("sessions.list", **args)
    return {s["id"] for s in r["live"] + r["recent"]}


def subject_of(admin, msg_id, scope=None):
    args = {"scope": scope} if scope else {}
    headers = admin.ok("messages.get", message=msg_id, **args)["headers"]
    return next(v for k, v in headers if k.lower() == "subject")


def subjects(admin, scope=None):
    """The Subject of every message the scope (or the server's own store) kept, sorted."""
    args = {"scope": scope} if scope else {}
    return sorted(subject_of(admin, m["id"], scope) for m in admin.ok("messages.list", **args)["messages"])


def test_conflicting_profiles_used_at_once(server):
    """A 421 greeting in one scope, a TLS alert in another, nothing in a third, the server's own listeners
    untouched: real clients in all four at once each see only their own behaviour, messages, sessions and
    counters."""
    with server.admin() as admin:
        busy = create(admin, name=GREETING_421)
        broken_tls = create(admin, name=TLS_ALERT)
        clean = create(admin)
        assert len({busy.port(), broken_tls.port(), clean.port(), server.port}) == 4

        def in_busy():
            return nodemailer(busy, message={"from": "a@example.test", "to": "b@example.test", "subject": "busy",
                                             "text": "body"})

        def in_broken_tls():
            return phpmailer(broken_tls, [{"from": "a@example.test", "to": ["b@example.test"], "subject": "tls",
                                          "body": "body"}], listener="submission", tls="starttls",
                             exceptions=True)

        def swaks_in_broken_tls():
            return swaks(broken_tls, "--to", "a@example.test", listener="smtps", tls="implicit")

        def in_clean():
            smtplib_send(clean, "one@example.test", "clean-smtplib", listener="submission", tls="starttls")
            return nodemailer(clean, message={"from": "a@example.test", "to": "b@example.test",
                                              "subject": "clean-nodemailer", "text": "body"},
                              listener="smtps", tls="implicit", auth={"user": "u", "pass": "p"})

        def in_own():
            smtplib_send(server, "own@example.test", "own")
            return swaks(server, "--to", "own@example.test", "--header", "Subject: own-swaks")

        with ThreadPoolExecutor(5) as pool:
            futures = [pool.submit(f) for f in (in_busy, in_broken_tls, swaks_in_broken_tls, in_clean, in_own)]
            busy_r, tls_r, swaks_tls, clean_r, own_swaks = [f.result(timeout=120) for f in futures]

        # What each client itself reported.
        assert busy_r["ok"] is False and busy_r["responseCode"] == 421, busy_r
        assert "4.3.2 Service not available" in busy_r["response"], busy_r
        assert tls_r["results"][0]["ok"] is False, tls_r
        assert tls_r["results"][0]["errorInfo"].startswith(
            "SMTP Error: Could not connect to SMTP host. Connection failed. stream_socket_enable_crypto(): "
            "SSL operation failed"), tls_r
        assert "sslv3 alert handshake failure" in tls_r["results"][0]["errorInfo"], tls_r
        assert swaks_tls.returncode != 0 and any("TLS" in e or "SSL" in e for e in swaks_errors(swaks_tls)), \
            swaks_tls.stdout + swaks_tls.stderr
        assert clean_r["ok"] is True, clean_r
        assert own_swaks.returncode == 0, own_swaks.stdout

        # Each scope's messages, and none of anyone else's.
        assert subjects(admin, busy.id) == []
        assert subjects(admin, broken_tls.id) == []
        assert subjects(admin, clean.id) == ["clean-nodemailer", "clean-smtplib"]
        assert subjects(admin) == ["own", "own-swaks"]

        # Sessions: disjoint, and each scope counts its own.
        own, b, t, c = (session_ids(admin, s) for s in (None, busy.id, broken_tls.id, clean.id))
        assert len(b) == 1 and len(t) == 2 and len(c) == 2 and len(own) == 2
        assert not (own & b) and not (own & t) and not (own & c) and not (b & t) and not (t & c)
        stats = {k: admin.ok("stats", **({"scope": k} if k else {})) for k in (None, busy.id, broken_tls.id, clean.id)}
        assert stats[busy.id]["faults"]["by_stage"] == {"greeting": 1}
        assert stats[broken_tls.id]["faults"]["by_stage"] == {"tls_handshake": 2}
        assert stats[clean.id]["faults"]["fired"] == 0 and stats[None]["faults"]["fired"] == 0
        assert stats[clean.id]["messages"]["accepted"] == 2 and stats[None]["messages"]["accepted"] == 2
        assert stats[busy.id]["sessions"]["total"] == 1 and stats[None]["sessions"]["total"] == 2
        assert admin.ok("profile.get", scope=busy.id)["name"] == GREETING_421
        assert admin.ok("profile.get")["name"] == ""


def test_wait_never_returns_another_scopes_mail(server):
    """messages.wait in one scope ignores mail to the same address in another scope and on the server's own
    listener, and answers with its own."""
    with server.admin() as admin, server.admin() as waiter:
        a, b = create(admin), create(admin)
        waiter.send_obj({"id": 1, "cmd": "messages.wait", "scope": a.id, "to": "same@example.test", "timeout": 30})
        smtplib_send(b, "same@example.test", "for-b")
        smtplib_send(server, "same@example.test", "for-own")
        with pytest.raises(socket.timeout):
            waiter.read_line(timeout=1.0)
        smtplib_send(a, "same@example.test", "for-a")
        resp = waiter.response(timeout=10)
        assert resp["ok"] is True and subject_of(admin, resp["message"]["id"], a.id) == "for-a", resp
        # An already kept message answers at once, from the right scope only.
        kept = waiter.ok("messages.wait", scope=b.id, to="same@example.test")["message"]
        assert subject_of(admin, kept["id"], b.id) == "for-b"


def test_events_of_one_scope(server):
    """events.subscribe with a scope streams that scope's sessions only, each line naming the scope."""
    with server.admin() as admin, server.admin() as sub:
        a, b = create(admin), create(admin)
        sub.ok("events.subscribe", scope=a.id)
        smtplib_send(b, "x@example.test", "b")
        smtplib_send(server, "x@example.test", "own")
        smtplib_send(a, "x@example.test", "a")
        events = sub.events_until(lambda e: e["event"] == "close", timeout=10)
        assert events and all(e.get("scope") == a.id for e in events), events
        assert {e["session"] for e in events} <= session_ids(admin, a.id)


def test_scope_ends_with_its_admin_connection(server):
    """Closing the creating admin connection ends the scope: its ports refuse, a wait on it answers
    not_found, its subscribers get a last line and are closed, its messages are gone; a kept scope survives
    until scope.delete. The server's own listener is untouched throughout."""
    creator = server.admin()
    gone = create(creator, listeners=["smtp", "smtps"])
    kept = create(creator, keep=True)
    assert set(gone.listeners) == {"smtp", "smtps"} and kept.answer["keep"] is True
    smtplib_send(gone, "a@example.test", "before")
    with server.admin() as admin, server.admin() as waiter, server.admin() as sub:
        waiter.send_obj({"id": 7, "cmd": "messages.wait", "scope": gone.id, "to": "never@example.test"})
        sub.ok("events.subscribe", scope=gone.id)
        assert [s["scope"] for s in admin.ok("scope.list")["scopes"]] == [gone.id, kept.id]
        creator.close()
        resp = waiter.response(timeout=10)
        assert resp["id"] == 7 and resp["error"]["code"] == "not_found", resp
        assert f"scope {gone.id} ended" in resp["error"]["message"]
        last = sub.events_until(lambda e: e["event"] == "scope_end", timeout=10)[-1]
        assert last == {"event": "scope_end", "scope": gone.id}
        with pytest.raises(ConnectionError):  # then the server closes the stream
            sub.read_line(timeout=10)
        poll(lambda: refused(gone.port()) and refused(gone.port("smtps")), 10, message="the ended scope's ports refuse")
        assert [s["scope"] for s in admin.ok("scope.list")["scopes"]] == [kept.id]
        admin.error("messages.list", "not_found", scope=gone.id)
        smtplib_send(kept, "k@example.test", "kept")
        assert subjects(admin, kept.id) == ["kept"]
        assert admin.ok("scope.delete", scope=kept.id)["deleted"] == kept.id
        admin.error("scope.delete", "not_found", scope=kept.id)
        poll(lambda: refused(kept.port()), 10, message="the deleted scope's port refuses")
        smtplib_send(server, "own@example.test", "own")
        assert subjects(admin) == ["own"]


def test_scope_end_closes_live_sessions(server):
    """A session open in a scope when it ends is closed: the client sees the connection go."""
    with server.admin() as admin:
        sc = create(admin)
        client = smtplib_client(sc)
        client.ehlo()
        assert admin.ok("stats", scope=sc.id)["sessions"]["live"] == 1
        admin.ok("scope.delete", scope=sc.id)
        with pytest.raises((OSError, EOFError)) as err:
            for _ in range(3):  # the 421 may be read as the answer to the first NOOP
                code, _msg = client.noop()
                if code == 421:
                    raise EOFError("421")
        assert err.value is not None
        client.close()
        assert admin.ok("stats")["sessions"]["live"] == 0


def test_connection_faults_act_on_the_scope_only(server):
    """refuse and blackhole in a scope's profile close or blackhole that scope's listener only."""
    with server.admin() as admin:
        refusing = create(admin, name="connect-refused")
        holed = create(admin, name="connect-timeout-blocked-port", listeners=["smtp"])
        assert refused(refusing.port()) and refused(refusing.port("smtps"))
        with pytest.raises(socket.timeout):
            socket.create_connection(("127.0.0.1", holed.port()), timeout=1.0).close()
        assert admin.ok("stats", scope=holed.id)["listeners"]["smtp"]["mode"] == "blackhole"
        smtplib_send(server, "own@example.test", "own")
        admin.ok("profile.clear", scope=refusing.id)
        smtplib_send(refusing, "r@example.test", "after-clear")
        assert subjects(admin, refusing.id) == ["after-clear"]
        assert admin.ok("stats")["listeners"]["smtp"]["mode"] == "accept"


def test_profile_reset_and_limits_state_per_scope(server):
    """Each scope has its own rule counters and reset: a 'times' rule fires once per scope, and reset in one
    scope restores its start profile and leaves the others alone."""
    once = {"name": "once", "rules": [{"when": {"stage": "rcpt", "times": 1}, "do": {"reply": "450 4.2.0 Try later"}}]}
    with server.admin() as admin:
        a, b = create(admin, profile=once), create(admin, profile=once)
        for sc in (a, b):
            with smtplib_client(sc) as c:
                with pytest.raises(Exception) as err:
                    c.sendmail("s@example.test", ["r@example.test"], make_message("first", "body"))
                assert "450" in str(err.value)
                c.sendmail("s@example.test", ["r@example.test"], make_message("second", "body"))
        admin.ok("profile.load", scope=a.id, name="rcpt-550-user-unknown")
        assert admin.ok("reset", scope=a.id)["name"] == "once"  # back to the profile it was created with
        assert subjects(admin, a.id) == [] and subjects(admin, b.id) == ["second"]
        assert admin.ok("stats", scope=b.id)["faults"]["fired"] == 1


def test_scope_ports_from_a_range(server_factory, tmp_path):
    """--scope-ports draws every scope listener from the range; past it, scope.create is unavailable."""
    base = _free_range(3)
    srv = server_factory("--scope-ports", f"{base}-{base + 2}")
    with srv.admin() as admin:
        scopes = [create(admin, listeners=["smtp"]) for _ in range(3)]
        assert sorted(s.port() for s in scopes) == [base, base + 1, base + 2]
        err = admin.error("scope.create", "unavailable", listeners=["smtp"])
        assert f"no free port for smtp in --scope-ports {base}-{base + 2}" in err["error"]["message"]
        admin.ok("scope.delete", scope=scopes[1].id)
        again = create(admin, listeners=["smtp"])
        assert again.port() == base + 1
        smtplib_send(again, "r@example.test", "in-range")
        assert subjects(admin, again.id) == ["in-range"]


def _free_range(n):
    """The first port of n consecutive ports free on 127.0.0.1 now, outside the kernel's ephemeral range when it
    leaves room: in it, another test's connection (or a listener on port 0) may take one of them before the
    server binds it."""
    with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
        low, high = (int(x) for x in f.read().split())
    bases = [*range(high + 1, 65536 - n, 97), *range(20011, low - n, 97), *range(39000, 60000, 97)]
    for base in bases:
        socks = []
        try:
            for p in range(base, base + n):
                s = socket.socket()
                s.bind(("127.0.0.1", p))
                socks.append(s)
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    pytest.skip("no free port range")


def test_max_scopes_and_bad_arguments(server_factory):
    srv = server_factory("--max-scopes", "2", "--smtps", "off")
    with srv.admin() as admin:
        create(admin), create(admin)
        err = admin.error("scope.create", "too_many_scopes")
        assert "at most 2 scopes" in err["error"]["message"]
        admin.ok("scope.delete", scope="s1")
        admin.error("scope.create", "bad_argument", listeners=["smtps"])  # the server does not run it
        admin.error("scope.create", "bad_argument", listeners=["smtp", "smtp"])
        admin.error("scope.create", "bad_argument", listeners="smtp")
        admin.error("scope.create", "bad_argument", listeners=[])
        admin.error("scope.create", "bad_argument", keep="yes")
        admin.error("scope.create", "bad_argument", scope="s2")
        admin.error("scope.create", "not_found", name="no-such-profile")
        bad = admin.error("scope.create", "invalid_profile", profile={"rules": [{"when": {"stage": "rpct"}}]})
        assert any(e.startswith("profile: rules[0].when.stage: unknown stage") for e in bad["errors"]), bad
        admin.error("scope.create", "forbidden", path="/etc/passwd")
        admin.error("scope.delete", "bad_argument")
        admin.error("scope.delete", "bad_argument", scope=7)
        admin.error("scope.delete", "not_found", scope="s1")
        admin.error("stats", "not_found", scope="")
        admin.error("ping", "bad_argument", scope="s2")
        assert [s["scope"] for s in admin.ok("scope.list")["scopes"]] == ["s2"]


def test_tls_and_users_are_the_servers(server_factory):
    """A scope's listeners present the server's certificate (the same CA verifies them) and know its users,
    unless the scope's profile sets server.users."""
    srv = server_factory("--user", "dev:secret")
    with srv.admin() as admin:
        plain = create(admin)
        own_users = create(admin, profile={"server": {"users": [{"user": "other", "password": "pw"}]}})
        assert admin.ok("tls.ca", scope=plain.id)["pem"] == admin.ok("tls.ca")["pem"]
        with smtplib_client(plain, listener="smtps", tls="implicit") as c:
            c.login("dev", "secret")
        with smtplib_client(own_users, listener="submission", tls="starttls") as c:
            with pytest.raises(Exception) as err:
                c.login("dev", "secret")
            assert "535" in str(err.value)
            c.login("other", "pw")


def test_parallel_workers_each_in_its_own_scope(server):
    """Eight workers, as a parallel test runner would run them, each on its own admin connection and scope
    with its own fault, sending at once: every worker sees exactly its own fault and mail."""
    def worker(i):
        with server.admin() as admin:
            rules = [{"when": {"stage": "rcpt", "rcpt": f"fail-{i}@*"}, "do": {"reply": f"550 5.1.1 worker {i} says no"}}]
            sc = create(admin, profile={"name": f"worker-{i}", "rules": rules})
            for j in range(5):
                with smtplib_client(sc) as c:
                    refused_rcpts = c.sendmail("s@example.test", [f"ok-{i}-{j}@example.test", f"fail-{i}@example.test"],
                                               make_message(f"w{i}-{j}", "body"))
                assert refused_rcpts == {f"fail-{i}@example.test": (550, f"5.1.1 worker {i} says no".encode())}
            assert subjects(admin, sc.id) == [f"w{i}-{j}" for j in range(5)]
            stats = admin.ok("stats", scope=sc.id)
            assert stats["faults"]["fired"] == 5 and stats["sessions"]["total"] == 5
            return sc.id

    with ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(worker, range(8), timeout=120))
    assert len(set(ids)) == 8
    with server.admin() as admin:
        poll(lambda: admin.ok("scope.list")["scopes"] == [], 10, message="every worker's scope ended")
        assert admin.ok("stats")["messages"]["accepted"] == 0


def test_ctl_scope_commands(server, tmp_path):
    """ctl scope create prints the answer as JSON; without --keep the scope lives while ctl runs (until its
    standard input closes); --scope applies a command to the scope."""
    profile = tmp_path / "p.json"
    profile.write_text(json.dumps({"name": "from-file", "rules": []}))
    kept = json.loads(ctl(server, "scope", "create", "--profile", str(profile), "--keep").stdout)
    assert kept["ok"] is True and kept["profile"]["name"] == "from-file"
    proc = subprocess.Popen(ctl_argv(server, "scope", "create", "--name", "rcpt-550-user-unknown",
                                         "--listeners", "smtp"),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        held = json.loads(proc.stdout.readline())
        assert list(held["listeners"]) == ["smtp"]
        listing = ctl(server, "scope", "list").stdout
        assert held["scope"] in listing and "rcpt-550-user-unknown" in listing and "(kept)" in listing
        stats = json.loads(ctl(server, "--json", "--scope", held["scope"], "stats").stdout)
        assert stats["faults"]["profile"] == "rcpt-550-user-unknown"
    finally:
        proc.stdin.close()
        assert proc.wait(timeout=10) == 0
    with server.admin() as admin:
        poll(lambda: [s["scope"] for s in admin.ok("scope.list")["scopes"]] == [kept["scope"]], 10,
             message="the held scope ended with ctl")
    assert ctl(server, "scope", "delete", kept["scope"]).stdout == f"deleted scope {kept['scope']}\n"
    r = ctl(server, "--scope", "s99", "stats")
    assert r.returncode == 1 and 'no scope has the id "s99" (not_found)' in r.stderr
    r = ctl(server, "--scope", "s1", "ping")
    assert r.returncode == 2 and "--scope does not apply to ping" in r.stderr
    r = ctl(server, "scope", "create", "--name", "a", "--profile", "b")
    assert r.returncode == 2


CYCLES = int(os.environ.get("SMTPFAULT_SCOPE_CYCLES", "1000"))


def open_fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def test_create_delete_cycles_with_traffic(server):
    """1,000 scope create/delete cycles (SMTPFAULT_SCOPE_CYCLES), each with a session and a message, some
    deleted with the session still open: no descriptor growth (the server's own leak checks run at exit
    under ASan and valgrind)."""
    with server.admin() as admin:
        smtplib_send(server, "warm@example.test", "warm-up")
        before = open_fds(server.pid)
        for i in range(CYCLES):
            sc = create(admin, listeners=["smtp"])
            if i % 10 == 0:
                client = smtplib_client(sc)  # left open: the delete closes it
                client.ehlo()
                admin.ok("scope.delete", scope=sc.id)
                client.close()
            else:
                smtplib_send(sc, "r@example.test", f"c{i}")
                admin.ok("scope.delete", scope=sc.id)
        poll(lambda: admin.ok("stats")["sessions"]["live"] == 0, 10, message="every scope session closed")
        poll(lambda: open_fds(server.pid) <= before, 10,
             message=f"descriptors back to {before} (now {open_fds(server.pid)})")
        assert admin.ok("scope.list")["scopes"] == []
        assert subjects(admin) == ["warm-up"]


def test_scopes_and_connections_share_the_descriptors(server_factory):
    """Under `ulimit -n 256` scopes and SMTP connections draw on one descriptor budget as they come: each
    scope counts for 6, each connection for 2; past it scope.create is unavailable (and says why), and the
    connections a scope took are given back when it ends."""
    with nofile_limit(256):
        srv = server_factory()
    with srv.admin() as admin:
        room = admin.ok("stats")["capacity"]["connections"]
        created = []
        for _ in range(100):
            resp = admin.call("scope.create", listeners=["smtp"])
            if not resp["ok"]:
                break
            created.append(resp["scope"])
        assert resp["error"]["code"] == "unavailable", resp
        assert "no descriptors left for another scope" in resp["error"]["message"]
        assert 5 < len(created) < 100
        assert admin.ok("stats")["capacity"]["connections"] == room - 3 * len(created)
        smtplib_send(Scope({"scope": created[0], "listeners": admin.ok("scope.list")["scopes"][0]["listeners"]}),
                     "r@example.test", "still-served")
        admin.ok("scope.delete", scope=created[-1])
        poll(lambda: admin.call("scope.create", listeners=["smtp"])["ok"], 10, message="a scope fits again")
