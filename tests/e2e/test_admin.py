"""The admin socket, command by command, over TCP and over a unix socket (docs/admin.md).

Every test that takes the `admin` fixture (or `admin_transport`, conftest.py) runs twice: once with a client on the TCP listener and once on the
unix socket of the same kind of server. Mail is sent by smtplib, raw sockets, or Nodemailer where a real
client matters. Load, concurrency and bad input are in test_admin_load.py and test_admin_input.py.
"""

import base64
import json
import re
import smtplib
import socket
import ssl
import time

import pytest

from conftest import (Server, check_error, make_message, poll, queued_id, run_binary, suite_pki,
                      transaction)
from harness.clients import nodemailer
from harness.env import HANG_GUARD

TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")

ENVELOPE_KEYS = {"id", "sender", "recipients", "helo", "client", "listener", "session", "tls", "auth", "size",
                 "smtputf8", "started", "received"}


def send(srv, sender, recipients, subject="test", body="hello\r\n", helo="admin.test.example"):
    """One message through smtplib; its ID from the 250 reply. smtplib's exceptions for a refusal."""
    msg = make_message(subject, body, sender=sender, to=recipients[0])
    with srv.smtp(helo=helo) as client:
        code, resp = client.mail(sender)
        if code != 250:
            raise smtplib.SMTPSenderRefused(code, resp, sender)
        for r in recipients:
            code, resp = client.rcpt(r)
            if code != 250:
                raise smtplib.SMTPRecipientsRefused({r: (code, resp)})
        code, resp = client.data(msg)
        if code != 250:
            raise smtplib.SMTPDataError(code, resp)
    return queued_id(resp)


def nodemailer_send(srv, to, sender="node@example.org", subject="from nodemailer"):
    return nodemailer(srv, {"from": sender, "to": to, "subject": subject, "text": "Hello.\n"})


def no_response_for(client, seconds):
    """Nothing arrives on client within seconds (a deferred response is still deferred)."""
    with pytest.raises(TimeoutError):
        line = client.read_line(timeout=seconds)
        pytest.fail(f"unexpected line from the admin socket: {line!r}")


RULE_REJECT_DATA_END = {"when": {"stage": "data_end"}, "do": {"reply": "554 5.7.1 Rejected by the test"}}


# -- ping, version, ids --------------------------------------------------------------------------------------


def test_ping(admin):
    admin.send(b'{"id": 1, "cmd": "ping"}\n')
    line = admin.read_line()
    assert line == b'{"id":1,"ok":true,"pong":true}'


def test_version(admin):
    resp = admin.ok("version")
    assert set(resp) == {"id", "ok", "version", "libuv", "wolfssl", "cjson"}
    assert re.match(r"^\d+\.\d+\.\d+", resp["version"])
    assert resp["version"] in run_binary(["--version"]).stdout
    for lib in ("libuv", "wolfssl", "cjson"):
        assert re.match(r"^\d+\.\d+\.\d+", resp[lib]), resp


@pytest.mark.parametrize("rid", [0, 1, -7, 2.5, 0.1, 1e-7, 2147483648, 1234567890123456, 9007199254740991, "",
                                 "abc", "ünï-✓", {"a": [1, {"b": None}]}, [1, "x"], True, False, None])
def test_id_is_echoed(admin, rid):
    # The id comes first in the line, whatever its type, and is the same JSON value.
    admin.send(json.dumps({"cmd": "ping", "id": rid}).encode() + b"\n")
    line = admin.read_line()
    assert line.startswith(b'{"id":'), line
    resp = json.loads(line)
    assert json.dumps(resp["id"]) == json.dumps(rid)
    assert resp["ok"] is True


def test_absent_id_is_null_and_errors_echo_the_id(admin):
    assert admin.request({"cmd": "ping"}) == {"id": None, "ok": True, "pong": True}
    for req, code in [({"cmd": "no.such"}, "unknown_command"),
                      ({"cmd": "ping", "extra": 1}, "bad_argument"),
                      ({"cmd": "messages.get", "message": "NOPE"}, "not_found"),
                      ({"cmd": "profile.load", "profile": {"rules": 1}}, "invalid_profile"),
                      ({"cmd": "messages.wait", "to": "nobody@nowhere.test", "timeout": 0}, "timeout")]:
        for rid in ("s-1", 42, {"k": [1]}):
            resp = admin.request({"id": rid, **req})
            assert resp["id"] == rid, resp
            check_error(resp, code)
        assert admin.request(req)["id"] is None


# -- stats ---------------------------------------------------------------------------------------------------------


def test_stats_counts_sessions_messages_and_faults(admin_srv, admin):
    first = admin.ok("stats")
    assert first["sessions"] == {"live": 0, "total": 0}
    assert first["messages"] == {"accepted": 0, "kept": 0, "kept_bytes": 0, "evicted": 0, "evicted_bytes": 0,
                                 "discarded": 0}
    assert first["bytes"] == {"in": 0, "out": 0}
    assert first["faults"] == {"profile": "", "fired": 0, "by_stage": {}, "by_rule": [], "limits": 0,
                               "greylisted": 0, "magic": 0}
    assert set(first["listeners"]) == {"smtp", "submission", "smtps"}
    assert first["listeners"]["smtp"] == {"address": admin_srv.ports["smtp"]["address"], "mode": "accept"}

    admin.ok("profile.load", profile={"name": "counted", "rules": [
        {"name": "no-bob", "when": {"stage": "rcpt", "rcpt": "bob@*"}, "do": {"reply": "550 5.1.1 No bob here"}},
        {"name": "slow-sender", "when": {"stage": "mail", "sender": "slow@*"}, "do": {"reply": "451 4.3.0 Later"}},
        {"name": "never", "when": {"stage": "ehlo", "helo": "never.example"}, "do": {"reply": "550 no"}},
    ]})
    with admin_srv.connect() as c:
        c.greet()
        live = admin.ok("stats")["sessions"]
        assert live == {"live": 1, "total": 1}
        c.cmd("MAIL FROM:<alice@example.org>", 250)
        c.cmd("RCPT TO:<bob@example.org>", 550, "No bob here")
        c.cmd("RCPT TO:<bob@example.net>", 550, "No bob here")
        c.cmd("RCPT TO:<rcpt550@example.org>", 550)  # a magic address
        c.cmd("RCPT TO:<carol@example.org>", 250)
        c.cmd("DATA", 354)
        c.send(b"Subject: counted\r\n\r\nbody\r\n.\r\n")
        msg_id = queued_id(c.expect(250).text)
        c.cmd("MAIL FROM:<slow@example.org>", 451)
        c.cmd("QUIT", 221)
    stats = admin.ok("stats")
    assert stats["sessions"]["total"] == 1
    size = admin.ok("messages.get", message=msg_id)["message"]["size"]
    assert stats["messages"] == {"accepted": 1, "kept": 1, "kept_bytes": size, "evicted": 0, "evicted_bytes": 0,
                                 "discarded": 0}
    f = stats["faults"]
    assert f["profile"] == "counted"
    assert f["by_rule"] == [{"rule": 0, "name": "no-bob", "fired": 2}, {"rule": 1, "name": "slow-sender", "fired": 1},
                            {"rule": 2, "name": "never", "fired": 0}]
    assert f["magic"] == 1
    assert f["by_stage"] == {"rcpt": 3, "mail": 1}  # rules and magic addresses, per stage
    assert f["fired"] == 4
    assert stats["bytes"]["in"] > 0 and stats["bytes"]["out"] > 0
    assert stats["uptime_ms"] >= first["uptime_ms"]
    # A closed session is no longer live; a second one counts.
    admin_srv.smtp().quit()
    poll(lambda: admin.ok("stats")["sessions"] == {"live": 0, "total": 2}, 10, message="2 sessions, none live")


# -- profiles -------------------------------------------------------------------------------------------------------


def test_profile_get_validate_load_clear(admin_srv, admin):
    assert admin.ok("profile.get") == {"id": admin._ids, "ok": True, "name": "", "rules": 0, "stages": [],
                                       "listeners": [], "settings": [], "profile": {}}
    profile = {"name": "reject-data", "description": "every message is refused at the final dot",
               "rules": [RULE_REJECT_DATA_END]}
    resp = admin.ok("profile.validate", profile=profile)
    assert {k: resp[k] for k in ("valid", "name", "rules")} == {"valid": True, "name": "reject-data", "rules": 1}
    assert admin.ok("profile.get")["name"] == "", "validate must not load"
    send(admin_srv, "a@example.org", ["b@example.org"])

    resp = admin.ok("profile.load", profile=profile)
    assert set(resp) == {"id", "ok", "name", "rules", "stages", "listeners", "settings"}
    assert resp["name"] == "reject-data" and resp["rules"] == 1
    # What the profile touches, so that a caller can tell what it put in force.
    assert (resp["stages"], resp["listeners"], resp["settings"]) == (["data_end"], ["smtp", "submission", "smtps"], [])
    got = admin.ok("profile.get")
    assert got["name"] == "reject-data" and got["rules"] == 1
    assert got["profile"] == profile
    with pytest.raises(smtplib.SMTPDataError) as e:
        send(admin_srv, "a@example.org", ["b@example.org"])
    assert e.value.smtp_code == 554

    assert admin.ok("profile.clear") == {"id": admin._ids, "ok": True}
    assert admin.ok("profile.get")["profile"] == {}
    send(admin_srv, "a@example.org", ["b@example.org"])
    admin_srv.wait_for_log(r'profile "reject-data" in force: 1 rule')
    admin_srv.wait_for_log(r"profile \(default\) in force: 0 rules")


def test_profile_loaded_mid_run_spares_the_transaction_in_flight(admin_srv, admin):
    with admin_srv.connect() as old:
        old.greet()
        old.cmd("MAIL FROM:<early@example.org>", 250)
        old.cmd("RCPT TO:<rcpt@example.org>", 250)
        admin.ok("profile.load", profile={"name": "late", "rules": [RULE_REJECT_DATA_END]})
        old.cmd("DATA", 354)
        old.send(b"Subject: in flight\r\n\r\nstarted before the profile\r\n.\r\n")
        first = queued_id(old.expect(250).text)
        # The session keeps the profile it started with, for its next transaction too.
        second = transaction(old, "early@example.org", ["rcpt@example.org"], b"Subject: same session\r\n\r\nx\r\n")
        with admin_srv.connect() as new:
            new.greet()
            with pytest.raises(AssertionError, match="expected 250, got Reply.554"):
                transaction(new, "late@example.org", ["rcpt@example.org"], b"Subject: new session\r\n\r\nx\r\n")
    # A real client, in a new session, is rejected too.
    result = nodemailer_send(admin_srv, "rcpt@example.org")
    assert result["ok"] is False and result["responseCode"] == 554, result
    ids = [m["id"] for m in admin.ok("messages.list")["messages"]]
    assert ids == [first, second]


def test_invalid_profile_is_rejected_whole_and_the_old_one_stays(admin_srv, admin):
    good = {"name": "block", "rules": [{"when": {"stage": "rcpt", "rcpt": "*@blocked.test"},
                                         "do": {"reply": "550 5.7.1 Blocked by the test"}}]}
    admin.ok("profile.load", profile=good)
    bad = {"name": "broken", "rules": [
        {"when": {"stage": "rpct"}, "do": {"reply": "550 no"}},
        {"when": {"stage": "mail"}, "do": {"greylist": "1s"}},
        {"whne": {"stage": "mail"}, "do": {"reply": "550 no"}},
    ]}
    expected = [
        'profile: rules[0].when.stage: unknown stage "rpct" (expected one of: connect, greeting, ehlo, starttls, '
        "tls_handshake, auth, mail, rcpt, data, data_end, rset, vrfy, noop, help, quit, unknown)",
        "profile: rules[1].do.greylist: does not apply at stage mail (only at: rcpt)",
        "profile: rules[2].whne: unknown key (expected one of: name, comment, when, do)",
        'profile: rules[2].when: missing: every rule has a "when" (at least its stage)',
    ]
    for cmd in ("profile.validate", "profile.load"):
        resp = admin.call(cmd, profile=bad)
        assert resp["ok"] is False
        assert resp["error"] == {"code": "invalid_profile", "message": expected[0] + " (and 3 more errors)"}
        assert resp["errors"] == expected
    # The errors name the source when the client gives one (smtpfault ctl gives the file name).
    resp = admin.call("profile.load", profile={"rules": [{"when": {"stage": "rpct"}}]}, source="mine.json")
    assert all(e.startswith("mine.json: rules[0].") for e in resp["errors"]), resp
    resp = admin.call("profile.load", profile="not an object")
    assert resp["errors"] == ["profile: expected an object, got a string"]
    check_error(resp, "invalid_profile")

    got = admin.ok("profile.get")
    assert got["name"] == "block" and got["profile"] == good
    result = nodemailer_send(admin_srv, "someone@blocked.test")
    assert result["ok"] is False and result["responseCode"] == 550, result
    assert "Blocked by the test" in result["response"]
    assert nodemailer_send(admin_srv, "someone@fine.test")["ok"] is True


def test_profile_load_by_name_and_by_path(short_tmp, server_factory, admin_transport):
    shipped = short_tmp / "profiles"
    shipped.mkdir()
    (shipped / "reject-all.json").write_text(json.dumps({"name": "reject-all", "rules": [RULE_REJECT_DATA_END]}))
    (shipped / "broken.json").write_text('{"rules": [{"when": {"stage": "nope"}, "do": {}}]}')
    elsewhere = short_tmp / "elsewhere.json"
    elsewhere.write_text(json.dumps({"name": "from-path", "rules": []}))
    # Paths: files in the profile directories and in --admin-allow-paths ("." is the server's directory).
    srv = server_factory("--admin", f"unix:{short_tmp}/admin.sock", "--admin-allow-paths", f"{short_tmp}:.",
                         env={"SMTPFAULT_PROFILES": str(shipped)})
    with srv.admin(unix=admin_transport == "unix") as admin:
        for name in ("reject-all", "reject-all.json"):
            resp = admin.ok("profile.validate", name=name)
            assert (resp["name"], resp["rules"]) == ("reject-all", 1)
            resp = admin.ok("profile.load", name=name)
            assert (resp["name"], resp["rules"]) == ("reject-all", 1)
        with pytest.raises(smtplib.SMTPDataError):
            send(srv, "a@example.org", ["b@example.org"])
        for name in ("missing", f"../{shipped.name}/reject-all", str(elsewhere)):
            resp = admin.call("profile.load", name=name)
            check_error(resp, "not_found")
        resp = admin.call("profile.load", name="broken")
        check_error(resp, "invalid_profile")
        assert resp["errors"][0].startswith(f"{shipped}/broken.json: rules[0].when.stage: unknown stage")
        resp = admin.call("profile.load", name=7)
        check_error(resp, "bad_argument")

        resp = admin.ok("profile.load", path=str(elsewhere))
        assert (resp["name"], resp["rules"]) == ("from-path", 0)
        assert admin.ok("profile.get")["profile"] == {"name": "from-path", "rules": []}
        send(srv, "a@example.org", ["b@example.org"])
        # A relative path is the server's: relative to its working directory.
        (srv.workdir / "relative.json").write_text('{"name": "relative"}')
        assert admin.ok("profile.load", path="relative.json")["name"] == "relative"
        resp = admin.call("profile.load", path=str(short_tmp / "absent.json"))
        check_error(resp, "invalid_profile")
        assert resp["errors"] == [f"{short_tmp}/absent.json: cannot read: no such file or directory"]
        for args in ({}, {"path": str(elsewhere), "name": "reject-all"}, {"path": 1}, {"profile": {}, "source": 2},
                     {"profile": {}, "nope": True}):
            check_error(admin.call("profile.load", **args), "bad_argument")
            check_error(admin.call("profile.validate", **args), "bad_argument")
        assert admin.ok("profile.get")["name"] == "relative"


# -- messages ---------------------------------------------------------------------------------------------------


def test_messages_list_get_delete_clear(admin_srv, admin):
    m1 = send(admin_srv, "alice@a.test", ["bob@b.test"], subject="one")
    m2 = send(admin_srv, "carol@c.test", ["dave@d.test", "erin@b.test"], subject="two")
    latin1 = "Grüße aus Köln\r\n".encode("latin-1")
    m3 = send(admin_srv, "alice@a.test", ["frank@f.test"], subject="three", body=latin1)

    resp = admin.ok("messages.list")
    assert [m["id"] for m in resp["messages"]] == [m1, m2, m3]
    assert resp["count"] == 3 and resp["truncated"] is False
    first = resp["messages"][0]
    assert ENVELOPE_KEYS <= set(first)
    assert first["sender"] == "alice@a.test" and first["recipients"] == ["bob@b.test"]
    assert first["helo"] == "admin.test.example" and first["listener"] == "smtp" and first["tls"] is None
    assert TIME_RE.match(first["started"]) and TIME_RE.match(first["received"])
    assert first == admin_srv.message(m1).envelope  # the same envelope as the store directory's ID.json

    def ids(**filters):
        return [m["id"] for m in admin.ok("messages.list", **filters)["messages"]]

    assert ids(to="*@b.test") == [m1, m2]
    assert ids(**{"from": "alice@*"}) == [m1, m3]
    assert ids(to="*@b.test", **{"from": "alice@*"}) == [m1]
    assert ids(to="erin@b.test") == [m2]
    assert ids(to="nobody@*") == []
    assert ids(since=m1) == [m2, m3]
    assert ids(since=m3) == []
    resp = admin.ok("messages.list", limit=2)
    assert [m["id"] for m in resp["messages"]] == [m1, m2] and resp["count"] == 2 and resp["truncated"] is True
    for args in ({"limit": 0}, {"limit": "2"}, {"to": 5}, {"since": 1}, {"sender": "x"}):
        check_error(admin.call("messages.list", **args), "bad_argument")
    check_error(admin.call("messages.list", since="NOSUCHID"), "not_found")

    got = admin.ok("messages.get", message=m1)
    assert got["message"] == first
    assert got["headers"][:3] == [["From", "<alice@a.test>"], ["To", "<bob@b.test>"], ["Subject", "one"]]
    assert got["body"] == "hello\r\n"
    assert "raw_base64" not in got
    raw = admin.ok("messages.get", message=m1, raw=True)
    assert base64.b64decode(raw["raw_base64"]) == admin_srv.message(m1).raw
    # A body that is not UTF-8 comes as base64.
    got = admin.ok("messages.get", message=m3)
    assert got["body"] is None and base64.b64decode(got["body_base64"]) == latin1
    for args in ({}, {"message": 3}, {"message": m1, "raw": 1}, {"message": m1, "extra": 1}):
        check_error(admin.call("messages.get", **args), "bad_argument")

    assert admin.ok("messages.delete", message=m2)["deleted"] == m2
    check_error(admin.call("messages.get", message=m2), "not_found")
    check_error(admin.call("messages.delete", message=m2), "not_found")
    check_error(admin.call("messages.delete"), "bad_argument")
    assert ids() == [m1, m3]
    assert ids(since=m2) == [m3], "a deleted id still orders for since"

    assert admin.ok("messages.clear")["cleared"] == 2
    assert admin.ok("messages.list")["messages"] == []
    assert admin.ok("messages.clear")["cleared"] == 0
    stats = admin.ok("stats")["messages"]
    assert stats["accepted"] == 3 and stats["kept"] == 0
    assert sorted(admin_srv.message_ids()) == sorted([m1, m2, m3]), "the store directory keeps its files"


def test_folded_headers_are_unfolded(admin_srv, admin):
    msg = (b"Subject: a long\r\n subject line\r\nX-Tab:\tone\r\n\ttwo\r\nFrom: <a@example.org>\r\n\r\n"
           b"Body line\r\n")
    with admin_srv.smtp() as client:
        client.sendmail("a@example.org", ["b@example.org"], msg)
    (m,) = admin.ok("messages.list")["messages"]
    got = admin.ok("messages.get", message=m["id"])
    assert got["headers"] == [["Subject", "a long subject line"], ["X-Tab", "one\ttwo"], ["From", "<a@example.org>"]]
    assert got["body"] == "Body line\r\n"


def test_messages_wait_returns_when_nodemailer_sends(admin_srv, admin):
    admin.send_obj({"id": "w1", "cmd": "messages.wait", "to": "*@wait.test", "timeout": 60})
    no_response_for(admin, 0.5)
    result = nodemailer_send(admin_srv, "someone@wait.test")
    assert result["ok"] is True, result
    resp = admin.response(timeout=20)
    assert resp["id"] == "w1" and resp["ok"] is True
    assert resp["message"]["id"] == queued_id(result["response"])
    assert resp["message"]["recipients"] == ["someone@wait.test"]
    assert resp["message"]["sender"] == "node@example.org"
    assert resp["message"] == admin_srv.message(resp["message"]["id"]).envelope


def test_messages_wait_answers_at_once_for_a_kept_message(admin_srv, admin):
    msg_id = send(admin_srv, "a@example.org", ["kept@example.org"])
    start = time.monotonic()
    resp = admin.ok("messages.wait", to="kept@*", timeout=30, read_timeout=20)
    assert time.monotonic() - start < 15, "answered on its 30 s timeout, not at once"
    assert resp["message"]["id"] == msg_id
    # Without a filter, the oldest kept message answers.
    send(admin_srv, "a@example.org", ["other@example.org"])
    assert admin.ok("messages.wait", timeout=30, read_timeout=20)["message"]["id"] == msg_id


def test_messages_wait_globs_and_since(admin_srv, admin):
    admin.send_obj({"id": 1, "cmd": "messages.wait", "to": "*@target.test", "from": "app@*", "timeout": 60})
    send(admin_srv, "other@example.org", ["x@target.test"])  # sender does not match
    send(admin_srv, "app@example.org", ["x@elsewhere.test"])  # recipient does not match
    no_response_for(admin, 0.5)
    hit = send(admin_srv, "app@example.org", ["first@elsewhere.test", "second@target.test"])
    resp = admin.response(timeout=20)
    assert resp["id"] == 1 and resp["message"]["id"] == hit

    # since: only messages after that one, even though a match is kept.
    admin.send_obj({"id": 2, "cmd": "messages.wait", "to": "*@target.test", "since": hit, "timeout": 60})
    no_response_for(admin, 0.5)
    later = send(admin_srv, "anyone@example.org", ["third@target.test"])
    resp = admin.response(timeout=20)
    assert resp["id"] == 2 and resp["message"]["id"] == later
    # A bad argument is answered at once.
    for args in ({"timeout": -1}, {"timeout": 601}, {"timeout": "1"}, {"to": ["a"]}, {"limit": 1}):
        check_error(admin.call("messages.wait", **args), "bad_argument")
    check_error(admin.call("messages.wait", since="NOSUCH"), "not_found")


def test_messages_wait_times_out_without_blocking_others(admin_srv, admin_transport):
    WAIT_S = 5.0  # long enough for the others' requests on a loaded machine to finish before it ends
    unix = admin_transport == "unix"
    with admin_srv.admin(unix=unix) as waiter, admin_srv.admin(unix=not unix) as other:
        start = time.monotonic()
        waiter.send_obj({"id": "slow", "cmd": "messages.wait", "to": "never@nowhere.test", "timeout": WAIT_S})
        waiter.send_obj({"id": "after", "cmd": "ping"})  # queued behind the wait, on the same connection
        # Meanwhile other clients and SMTP sessions go on.
        assert other.ok("ping")["pong"] is True
        msg_id = send(admin_srv, "a@example.org", ["b@example.org"])
        assert other.ok("messages.wait", to="b@*", timeout=5)["message"]["id"] == msg_id
        with admin_srv.admin(unix=unix) as third:
            assert third.ok("stats")["messages"]["accepted"] == 1
        # In order: the others were served before the wait ended (it ends at WAIT_S, checked below).
        assert time.monotonic() - start < WAIT_S, "others were held up by the wait"
        resp = waiter.response(timeout=20)
        elapsed = time.monotonic() - start
        assert resp["id"] == "slow"
        assert resp["error"] == {"code": "timeout", "message": "no matching message arrived in time"}
        assert WAIT_S - 0.2 <= elapsed < HANG_GUARD, elapsed
        assert waiter.response(timeout=5) == {"id": "after", "ok": True, "pong": True}
        # timeout 0: at once.
        start = time.monotonic()
        check_error(waiter.call("messages.wait", to="never@*", timeout=0), "timeout")
        assert time.monotonic() - start < 10, "timeout 0 waited"


# -- sessions -------------------------------------------------------------------------------------------------------


def transcript_pairs(session):
    return [(e["event"], e["text"]) for e in session["transcript"]]


def test_sessions_list_and_get_live_and_closed(admin_srv, admin):
    assert admin.ok("sessions.list") == {"id": admin._ids, "ok": True, "live": [], "recent": []}
    with admin_srv.connect() as c:
        c.greet("live.example")
        c.cmd("MAIL FROM:<live@example.org>", 250)
        local = c.local_address()
        resp = admin.ok("sessions.list")
        assert resp["recent"] == []
        (live,) = resp["live"]
        assert live["client"] == local and live["listener"] == "smtp" and live["live"] is True
        assert live["helo"] == "live.example" and live["state"] == "mail" and live["messages"] == 0
        assert "transcript" not in live
        sid = live["id"]
        s = admin.ok("sessions.get", session=sid)["session"]
        assert s["live"] is True and s["transcript_dropped"] == 0
        pairs = transcript_pairs(s)
        assert pairs[0][0] == "connect" and pairs[0][1].startswith(local)
        assert pairs[1] == ("reply", "220 localhost ESMTP smtpfault")
        assert ("command", "EHLO live.example") in pairs
        assert ("reply", "250-localhost") in pairs
        assert pairs[-2:] == [("command", "MAIL FROM:<live@example.org>"),
                              ("reply", "250 2.1.0 Sender <live@example.org> OK")]
        assert all(TIME_RE.match(e["time"]) for e in s["transcript"])
        c.cmd("RCPT TO:<r@example.org>", 250)
        c.cmd("DATA", 354)
        c.send(b"Subject: s\r\n\r\nx\r\n.\r\n")
        msg_id = queued_id(c.expect(250).text)
        c.cmd("QUIT", 221)
        assert c.read_until_closed() == b""

    def closed():
        r = admin.ok("sessions.list")
        return r if not r["live"] and r["recent"] else None

    resp = poll(closed, 10, message="the session to be closed")
    (rec,) = resp["recent"]
    assert rec["id"] == sid and rec["live"] is False and rec["state"] == "closed"
    assert rec["close_reason"] == "client quit" and rec["messages"] == 1
    assert TIME_RE.match(rec["ended"]) and rec["ended"] >= rec["started"]
    s = admin.ok("sessions.get", session=sid)["session"]
    pairs = transcript_pairs(s)
    assert [t for e, t in pairs if e == "message"] == [f"{msg_id}: 17 bytes, 1 recipient"]
    assert ("reply", f"250 2.0.0 Ok: queued as {msg_id}") in pairs
    assert pairs[-3:-1] == [("command", "QUIT"), ("reply", "221 2.0.0 localhost Bye")]
    assert pairs[-1][0] == "close" and pairs[-1][1].startswith("client quit")
    # the same lines as the text transcript on stderr
    poll(lambda: admin_srv.session_events(sid) == pairs, 10, message=lambda: f"{admin_srv.session_events(sid)} == {pairs}")

    check_error(admin.call("sessions.get", session=sid + 100), "not_found")
    for args in ({}, {"session": str(sid)}, {"session": 0}, {"session": -1}, {"session": sid, "x": 1}):
        check_error(admin.call("sessions.get", **args), "bad_argument")
    check_error(admin.call("sessions.list", live=True), "bad_argument")


# -- events ---------------------------------------------------------------------------------------------------------


def test_events_subscribe_streams_a_nodemailer_session(admin_srv, admin_transport):
    unix = admin_transport == "unix"
    with admin_srv.admin(unix=unix) as sub:
        resp = sub.ok("events.subscribe")
        assert resp == {"id": 1, "ok": True, "subscribed": True}
        result = nodemailer_send(admin_srv, "watched@example.org", subject="watched")
        assert result["ok"] is True, result
        msg_id = queued_id(result["response"])
        events = sub.events_until(lambda e: e["event"] == "close", timeout=20)
        sids = {e.get("session") for e in events}
        assert len(sids) == 1 and isinstance(sids.pop(), int), events
        for e in events:
            assert set(e) == {"event", "session", "time", "text"}, e
            assert TIME_RE.match(e["time"]), e
        kinds = [e["event"] for e in events]
        assert kinds[0] == "connect" and kinds[-1] == "close"
        assert {"connect", "command", "reply", "message", "close"} <= set(kinds)
        commands = [e["text"].split(" ")[0].upper() for e in events if e["event"] == "command"]
        assert commands[:4] == ["EHLO", "MAIL", "RCPT", "DATA"] and commands[4:] in ([], ["QUIT"]), commands
        (message,) = [e for e in events if e["event"] == "message"]
        assert message["text"].startswith(f"{msg_id}: ")
        assert ("reply", f"250 2.0.0 Ok: queued as {msg_id}") in [(e["event"], e["text"]) for e in events]
        # The subscribed connection still answers requests, between events.
        sub.send_obj({"id": "p", "cmd": "ping"})
        assert sub.response(timeout=10) == {"id": "p", "ok": True, "pong": True}

    # Disconnected: the next session streams to nobody and the server is healthy; a new subscriber sees only
    # what happens after it subscribed.
    assert nodemailer_send(admin_srv, "unwatched@example.org")["ok"] is True
    with admin_srv.admin(unix=unix) as sub2:
        sub2.ok("events.subscribe")
        with admin_srv.smtp(helo="second.example") as client:
            client.noop()
        events = sub2.events_until(lambda e: e["event"] == "close", timeout=20)
        assert events[0]["event"] == "connect"
        assert ("command", "ehlo second.example") in [(e["event"], e["text"]) for e in events]
    with admin_srv.admin() as other:
        assert other.ok("stats")["sessions"]["total"] == 3


def test_events_carry_faults_and_server_side_closes(admin_srv, admin):
    admin.ok("profile.load", profile={"name": "f", "rules": [
        {"name": "bye", "when": {"stage": "mail"}, "do": {"reply": "421 4.7.0 Go away"}}]})
    with admin_srv.admin() as sub:
        sub.ok("events.subscribe")
        with admin_srv.connect() as c:
            c.greet()
            c.cmd("MAIL FROM:<a@example.org>", 421)
            c.read_until_closed()
        events = sub.events_until(lambda e: e["event"] == "close", timeout=20)
        kinds = [(e["event"], e["text"]) for e in events]
        assert any(k == "fault" and "rule 0 (bye) at mail" in t for k, t in kinds), kinds
        assert ("reply", "421 4.7.0 Go away") in kinds


# -- tls.ca ---------------------------------------------------------------------------------------------------------


def test_tls_ca_verifies_the_smtps_certificate(admin_srv, admin):
    pem = admin.ok("tls.ca")["pem"]
    assert pem.startswith("-----BEGIN CERTIFICATE-----\n") and pem.endswith("-----END CERTIFICATE-----\n")
    assert pem == (suite_pki() / "ca.pem").read_text()
    ctx = ssl.create_default_context(cadata=pem)
    assert ctx.check_hostname and ctx.verify_mode == ssl.CERT_REQUIRED
    smtps = admin_srv.ports["smtps"]
    with smtplib.SMTP_SSL(smtps["host"], smtps["port"], context=ctx, timeout=20) as client:
        code, _ = client.ehlo("tls.example")
        assert code == 250
        assert client.sock.version() in ("TLSv1.2", "TLSv1.3")
    # Another CA does not verify it.
    other = ssl.create_default_context(cafile=str(suite_pki() / "untrusted-ca.pem"))
    with socket.create_connection((smtps["host"], smtps["port"]), timeout=20) as raw:
        with pytest.raises(ssl.SSLCertVerificationError):
            other.wrap_socket(raw, server_hostname="localhost")
    check_error(admin.call("tls.ca", pem=True), "bad_argument")


def test_tls_ca_without_tls_is_unavailable(tmp_path):
    srv = Server(tmp_path / "no-tls", args=["--no-tls"])
    at = srv.argv.index("--certs-dir")  # the suite's PKI cannot go with --no-tls
    del srv.argv[at:at + 2]
    try:
        srv.start()
        with srv.admin() as admin:
            resp = admin.call("tls.ca")
            assert resp["error"] == {"code": "unavailable", "message": "TLS is off (--no-tls)"}
            assert "smtps" not in srv.ports and admin.ok("ping")["pong"] is True
        srv.stop()
        srv.check_clean_exit()
    finally:
        srv.kill()


# -- reset ----------------------------------------------------------------------------------------------------------


def test_reset_restores_the_start_profile_counters_messages_and_limits(short_tmp, server_factory, admin_transport):
    start_profile = {"name": "start", "limits": {"messages_per_minute": {"max": 1, "per": "server"}}}
    path = short_tmp / "start.json"
    path.write_text(json.dumps(start_profile))
    srv = server_factory("--admin", f"unix:{short_tmp}/admin.sock", "--profile", str(path))
    with srv.admin(unix=admin_transport == "unix") as admin:
        assert admin.ok("profile.get")["profile"] == start_profile
        send(srv, "a@example.org", ["b@example.org"])
        with pytest.raises(smtplib.SMTPSenderRefused) as e:
            send(srv, "a@example.org", ["b@example.org"])
        assert e.value.smtp_code == 450
        admin.ok("profile.load", profile={"name": "other", "rules": [
            {"when": {"stage": "rcpt", "rcpt": "x@*"}, "do": {"reply": "550 no"}}]})
        send(srv, "a@example.org", ["b@example.org"])
        with srv.smtp(helo="reset.example") as c:
            assert c.mail("a@example.org")[0] == 250
            assert c.rcpt("x@example.org")[0] == 550
        before = admin.ok("stats")
        assert before["messages"]["accepted"] == 2 and before["faults"]["fired"] == 1

        resp = admin.ok("reset")
        assert resp == {"id": admin._ids, "ok": True, "cleared": 2, "name": "start", "rules": 0, "stages": ["mail"],
                    "listeners": ["smtp", "submission", "smtps"], "settings": ["limits.messages_per_minute"]}
        assert admin.ok("profile.get")["profile"] == start_profile
        assert admin.ok("messages.list")["messages"] == []
        after = admin.ok("stats")
        assert after["messages"] == {"accepted": 0, "kept": 0, "kept_bytes": 0, "evicted": 0, "evicted_bytes": 0,
                                     "discarded": 0}
        assert after["faults"]["fired"] == 0 and after["faults"]["limits"] == 0
        assert after["faults"]["profile"] == "start"
        # Sessions keep their numbers: ids never repeat, so the session count is not reset.
        assert after["sessions"]["total"] == before["sessions"]["total"]
        # The rate limit starts again from zero.
        send(srv, "a@example.org", ["b@example.org"])
        with pytest.raises(smtplib.SMTPSenderRefused):
            send(srv, "a@example.org", ["b@example.org"])
        assert admin.ok("stats")["faults"]["limits"] == 1
        check_error(admin.call("reset", profile=True), "bad_argument")
        srv.wait_for_log(r"reset: 2 messages cleared, profile and counters back to the start")


def test_scope_commands(admin):
    """scope.create, scope.list and scope.delete over TCP and the unix socket (test_scopes.py has the rest)."""
    created = admin.ok("scope.create", listeners=["smtp"], keep=True)
    assert created["scope"] and list(created["listeners"]) == ["smtp"] and created["keep"] is True
    assert created["profile"]["name"] == "" and created["profile"]["rules"] == 0
    (listed,) = admin.ok("scope.list")["scopes"]
    assert listed["scope"] == created["scope"] and listed["listeners"] == created["listeners"]
    assert listed["sessions"] == {"live": 0, "total": 0} and listed["messages"] == 0
    assert admin.ok("scope.delete", scope=created["scope"])["deleted"] == created["scope"]
    assert admin.ok("scope.list")["scopes"] == []


def test_client_report(admin, admin_srv):
    """client.report: the clients with a story, then one client's (test_client_report.py has the stories)."""
    assert admin.ok("client.report") == {"id": admin._ids, "ok": True, "clients": []}
    with admin_srv.connect() as c:
        c.greet()
        c.cmd("QUIT", 221)
    poll(lambda: admin.ok("client.report")["clients"] == ["127.0.0.1"], 10, message="the client's story")
    rep = admin.ok("client.report", client="127.0.0.1")["report"]
    assert list(rep) == ["client", "sessions", "first", "last", "summary", "findings", "threads"]
    assert rep["sessions"] == 1 and rep["findings"] == [] and rep["threads"] == []
    check_error(admin.call("client.report", client="::1"), "not_found")


def test_every_command_is_tested_here():
    """The command table in server/admin_cmd.h is what this file covers (a new command needs a test)."""
    from conftest import REPO_ROOT

    header = (REPO_ROOT / "server" / "admin_cmd.h").read_text()
    listed = re.findall(r'^\s*X\("([a-z.]+)"', header, re.M)
    assert len(listed) >= 17
    source = open(__file__).read()
    missing = [c for c in listed if f'"{c}"' not in source]
    assert not missing, f"commands without a test in {__file__}: {missing}"
