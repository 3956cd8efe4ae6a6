"""The retry story (issue 18): client.report gathers, per client address, what a client tried across its
connections, the replies it got and how long it waited before trying again, and the findings that come from
it (retry-4xx, retried-5xx, hammering, greylist-retry-too-soon, connections-past-limit, sent-after-rate-limit).
Delays are scripted here and checked from below to the millisecond, with a generous guard above."""

import smtplib
import time

import pytest

from harness.admin import ctl
from harness.profiles import reply_rule, rule, start_with_profile
from harness.smtp import RawClient, make_message

CLIENT = "127.0.0.1"
GUARD_MS = 3000  # above a scripted delay: a loaded two-core machine under ASan, never a flake


def report(srv, client=CLIENT):
    with srv.admin() as admin:
        return admin.ok("client.report", client=client)["report"]


def ids(rep):
    return [f["id"] for f in rep["findings"]]


def session_of(srv, sid):
    """sessions.get of session sid (live or closed) and its finding ids."""
    with srv.admin() as admin:
        session = admin.ok("sessions.get", session=sid)["session"]
    return session, [f["id"] for f in session["findings"]]


def assert_session_found(srv, sid, expected):
    """The retry story's findings are the session's too: the one whose try made them has them, with their
    transcript event, once each."""
    session, found = session_of(srv, sid)
    assert found == expected, session["findings"]
    assert all(f["session"] == sid for f in session["findings"])
    events = [e["text"].split(" ", 1)[0] for e in session["transcript"] if e["event"] == "finding"]
    assert events == expected, session["transcript"]
    return session


def send(srv, rcpt, sender="app@example.org"):
    """One message through smtplib on a new connection: the reply code of the refusal, or 250."""
    try:
        with smtplib.SMTP(srv.host, srv.port, timeout=10) as client:
            client.sendmail(sender, [rcpt], make_message("story", "hello", sender=sender, to=rcpt))
        return 250
    except smtplib.SMTPRecipientsRefused as e:
        return e.recipients[rcpt][0]
    except smtplib.SMTPResponseException as e:
        return e.smtp_code


def assert_delays(thread, scripted_s):
    """Each retry waited at least what the client slept, to the millisecond (with the clocks' own ms)."""
    assert len(thread["delays_ms"]) == len(scripted_s), thread
    for got, want in zip(thread["delays_ms"], scripted_s):
        assert want * 1000 - 2 <= got <= want * 1000 + GUARD_MS, (thread["delays_ms"], scripted_s)


def test_retried_a_421_with_backoff_and_gave_up_on_a_550(server_factory, tmp_path):
    srv = start_with_profile(server_factory, tmp_path, [
        reply_rule("rcpt", "421 4.3.2 Busy, try again later", rcpt="later@*", times=3),
        reply_rule("rcpt", "550 5.1.1 No such user", rcpt="nobody@*")])
    scripted = [0.2, 0.6, 1.5]  # a sender that doubles (and more) its wait each time
    codes = [send(srv, "later@example.com")]
    for wait in scripted:
        time.sleep(wait)
        codes.append(send(srv, "later@example.com"))
    assert codes == [421, 421, 421, 250]
    assert send(srv, "nobody@example.com") == 550  # and it does not try that one again

    rep = report(srv)
    # the one call a test suite makes
    assert rep["summary"] == {"retried_4xx": True, "backoff": True, "hammering": False, "retried_5xx": False,
                              "gave_up_after_5xx": True, "violations": 0}
    later, nobody = rep["threads"]
    assert later["rcpt"] == "later@example.com" and later["sender"] == "app@example.org"
    assert [t["code"] for t in later["tries"]] == [421, 421, 421, 250]
    assert [t["stage"] for t in later["tries"]] == ["rcpt", "rcpt", "rcpt", "data_end"]
    assert later["retries"] == 3 and later["outcome"] == "delivered" and later["backoff"] is True
    assert_delays(later, scripted)
    assert later["tries"][0]["delay_ms"] is None and later["tries"][1]["delay_ms"] == later["delays_ms"][0]
    assert [t["code"] for t in nobody["tries"]] == [550] and nobody["outcome"] == "refused"
    assert ids(rep) == ["retry-4xx"]
    assert rep["findings"][0]["count"] == 3 and rep["findings"][0]["severity"] == "info"
    assert rep["sessions"] == 5 and rep["client"] == CLIENT
    # each retry's session has its retry-4xx (and the report counts it once, above), the first none
    sessions = [t["session"] for t in later["tries"]]
    assert session_of(srv, sessions[0])[1] == []
    for sid in sessions[1:]:
        f = assert_session_found(srv, sid, ["retry-4xx"])["findings"][0]
        assert f["count"] == 1 and f["line"].startswith("tried again ") and "421 4.3.2 Busy" in f["line"]

    # the same story for people: smtpfault ctl report
    out = ctl(srv, "report", CLIENT)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "client 127.0.0.1: 5 sessions, 0 violations"
    assert lines[1] == "retried a 4xx: yes, backoff: yes, hammering: no, retried a 5xx: no, gave up after a 5xx: yes"
    assert lines[2].startswith("info      retry-4xx x3 (#2: tried again ")
    assert "  <app@example.org> -> <later@example.com>: delivered, 3 retries, backoff yes, hammering no" in lines
    assert "  <app@example.org> -> <nobody@example.com>: refused, 0 retries, backoff -, hammering no" in lines
    assert sum(l.startswith("    ") and l.endswith("rcpt     421 4.3.2 Busy, try again later") for l in lines) == 3
    listed = ctl(srv, "report")
    assert listed.returncode == 0 and listed.stdout == "127.0.0.1\n", listed


def test_hammering(server_factory, tmp_path):
    srv = start_with_profile(server_factory, tmp_path, [reply_rule("rcpt", "451 4.3.0 Try again later")])
    with RawClient(srv.host, srv.port) as c:
        c.greet()
        for _ in range(4):  # straight away, again and again
            c.cmd("MAIL FROM:<app@example.org>", 250)
            c.cmd("RCPT TO:<b@example.com>", 451)
            c.cmd("RSET", 250)
        c.cmd("QUIT", 221)
    rep = report(srv)
    (thread,) = rep["threads"]
    assert thread["retries"] == 3 and thread["hammering"] is True and thread["backoff"] is False
    assert thread["outcome"] == "deferred"
    assert ids(rep) == ["retry-4xx", "hammering"]
    assert rep["summary"]["hammering"] is True
    session = assert_session_found(srv, thread["tries"][0]["session"], ["retry-4xx", "hammering"])
    assert [f["count"] for f in session["findings"]] == [3, 1]
    assert [f["count"] for f in rep["findings"]] == [3, 1]  # the story's, not counted again with the session's


def test_retried_5xx(server_factory, tmp_path):
    srv = start_with_profile(server_factory, tmp_path, [reply_rule("rcpt", "550 5.1.1 No such user", rcpt="nobody@*")])
    assert send(srv, "nobody@example.com") == 550
    assert send(srv, "somebody@example.com") == 250  # another recipient: not a retry
    rep = report(srv)
    assert ids(rep) == [] and rep["summary"]["gave_up_after_5xx"] is True
    assert send(srv, "nobody@example.com") == 550
    rep = report(srv)
    assert ids(rep) == ["retried-5xx"]
    f = rep["findings"][0]
    assert f["severity"] == "violation" and "RFC 5321 4.2.1" in f["reference"]
    assert f["line"].startswith("tried again ") and "550 5.1.1 No such user" in f["line"]
    assert rep["summary"]["retried_5xx"] is True and rep["summary"]["violations"] == 1
    # the session that retried says so in its transcript, and in the log
    srv.wait_for_log(r"#3 finding retried-5xx \(violation\): RFC 5321 4\.2\.1")
    nobody = next(t for t in rep["threads"] if t["rcpt"] == "nobody@example.com")
    first, retry = [t["session"] for t in nobody["tries"]]
    assert session_of(srv, first)[1] == []
    session = assert_session_found(srv, retry, ["retried-5xx"])
    assert session["findings"][0]["line"] == f["line"]


def test_greylist_retry_too_soon(server_factory, tmp_path):
    srv = start_with_profile(server_factory, tmp_path, [rule("rcpt", {"greylist": "1500ms"})])
    assert send(srv, "b@example.com") == 450
    time.sleep(0.1)
    assert send(srv, "b@example.com") == 450  # too soon: greylisted again
    time.sleep(1.5)
    assert send(srv, "b@example.com") == 250
    rep = report(srv)
    assert ids(rep) == ["retry-4xx", "greylist-retry-too-soon"]
    (thread,) = rep["threads"]
    assert [t.get("greylist_ms") for t in thread["tries"]] == [1500, 1500, None]
    sessions = [t["session"] for t in thread["tries"]]
    assert_session_found(srv, sessions[1], ["retry-4xx", "greylist-retry-too-soon"])
    assert_session_found(srv, sessions[2], ["retry-4xx"])
    with srv.admin() as admin:
        admin.ok("reset")  # the greylist and the stories start afresh
    assert send(srv, "b@example.com") == 450
    time.sleep(1.6)
    assert send(srv, "b@example.com") == 250
    assert ids(report(srv)) == ["retry-4xx"]


def test_connections_past_limit(server_factory, tmp_path):
    srv = start_with_profile(server_factory, tmp_path, {"limits": {"connections_per_client": 1}})
    with RawClient(srv.host, srv.port) as first:
        first.greet()
        with RawClient(srv.host, srv.port) as second:
            second.expect(421)
        first.cmd("QUIT", 221)
    rep = report(srv)
    assert ids(rep) == ["connections-past-limit"]
    (thread,) = rep["threads"]
    assert thread["connection"] is True and thread["tries"][0]["stage"] == "connect"
    assert thread["tries"][0]["limited"] is True
    assert_session_found(srv, thread["tries"][0]["session"], ["connections-past-limit"])


def test_sent_after_rate_limit(server_factory, tmp_path):
    srv = start_with_profile(server_factory, tmp_path, {"limits": {"messages_per_minute": 1}})
    assert send(srv, "b@example.com") == 250
    assert send(srv, "c@example.com") == 450  # the limit: a well-behaved client waits now
    assert ids(report(srv)) == []
    assert send(srv, "d@example.com") == 450  # a retry of the refused MAIL (the same sender), while limited
    rep = report(srv)
    assert ids(rep) == ["retry-4xx", "sent-after-rate-limit"]
    (thread,) = rep["threads"]  # refused at MAIL, the tries join the thread of their sender
    assert [t["code"] for t in thread["tries"]] == [250, 450, 450]
    assert_session_found(srv, thread["tries"][2]["session"], ["retry-4xx", "sent-after-rate-limit"])


def test_report_gathers_session_findings(server):
    with RawClient(server.host, server.port) as c:
        c.greet()
    with RawClient(server.host, server.port) as c:
        c.greet()
    with server.admin() as admin:
        def gathered():
            rep = admin.ok("client.report", client=CLIENT)["report"]
            return rep if rep["sessions"] == 2 else None

        from harness.env import poll
        rep = poll(gathered, 10, message="both sessions in the report")
    assert ids(rep) == ["no-quit"] and rep["findings"][0]["count"] == 2
    assert rep["summary"]["violations"] == 1 and rep["threads"] == []


def test_report_arguments(server):
    with server.admin() as admin:
        assert admin.ok("client.report")["clients"] == []
        admin.error("client.report", "not_found", client="192.0.2.1")
        admin.error("client.report", "bad_argument", client=7)
    assert send(server, "b@example.com") == 250
    with server.admin() as admin:
        assert admin.ok("client.report")["clients"] == [CLIENT]


def test_a_scope_is_one_story(server):
    """In a scope every connection is the code under test: the story is the scope's, whatever the address."""
    with server.admin() as admin:
        sc = admin.ok("scope.create", listeners=["smtp"], profile={"rules": [
            {"when": {"stage": "rcpt", "times": 1}, "do": {"reply": "451 4.3.0 Try again later"}}]})
        port = sc["listeners"]["smtp"]["port"]

        def scoped_send():
            try:
                with smtplib.SMTP(server.host, port, timeout=10) as client:
                    client.sendmail("app@example.org", ["b@example.com"], make_message("scoped", "hello"))
                return 250
            except smtplib.SMTPRecipientsRefused as e:
                return e.recipients["b@example.com"][0]

        assert scoped_send() == 451
        time.sleep(0.1)
        assert scoped_send() == 250
        rep = admin.ok("client.report", scope=sc["scope"])["report"]
        assert rep["scope"] == sc["scope"] and "client" not in rep and rep["sessions"] == 2
        (thread,) = rep["threads"]
        assert [t["code"] for t in thread["tries"]] == [451, 250]
        assert_delays(thread, [0.1])
        assert ids(rep) == ["retry-4xx"]
        # the server's own listeners saw nothing of it
        assert admin.ok("client.report")["clients"] == []
        admin.error("client.report", "bad_argument", scope=sc["scope"], client=CLIENT)
        admin.ok("reset", scope=sc["scope"])  # the scope's reset forgets its story
        admin.error("client.report", "not_found", scope=sc["scope"])
        admin.error("client.report", "not_found", scope="s999")
