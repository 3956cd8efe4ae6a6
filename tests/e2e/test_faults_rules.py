"""
When rules fire (docs/profiles.md, "when"), through real clients: times, nth, every and what they count
over; conditions on sender, recipient, HELO, listener, client address, TLS and AUTH; time windows;
probability with a seed; greylisting.
"""

import re
import smtplib
import ssl
import time

import pytest

from conftest import ca_file, queued_id
from faultkit import (OK, RCPT, SENDER, check_clients, check_nodemailer, check_smtplib, check_swaks, fault_lines,
                      fault_server, nodemailer, reply_rule, rule, smtplib_client, smtplib_send)
from harness.clients import swaks_error_replies

fault_server = fault_server  # the fixture, imported from faultkit

MSG = b"Subject: rules\r\n\r\nrules\r\n"


def outcome(result):
    """A sendmail result as a short word: 'ok', or the SMTP code of the failure."""
    if isinstance(result, dict) and not result:
        return "ok"
    if isinstance(result, smtplib.SMTPRecipientsRefused):
        (code, _), = result.recipients.values()
        return str(code)
    if isinstance(result, smtplib.SMTPResponseException):
        return str(result.smtp_code)
    return repr(result)


def smtplib_outcomes(srv, n, **kw):
    """n sendmails, each on a new connection, one after the other: their outcomes."""
    return [outcome(smtplib_send(srv, **kw)) for _ in range(n)]


def nodemailer_outcome(srv, **message):
    r = nodemailer(srv, message)
    return "ok" if r["ok"] else str(r["responseCode"])


# -- "fail the first N, then succeed" --------------------------------------------------------------------------


@pytest.mark.parametrize("stage, reply", [("mail", "421 4.7.0 Try again later"),
                                          ("rcpt", "451 4.3.0 Temporary failure, try again"),
                                          ("data_end", "451 4.3.0 Queue file write error")])
def test_times_two_then_a_retrying_client_gets_through(fault_server, stage, reply):
    srv = fault_server([reply_rule(stage, reply, times=2)])
    code = reply[:3]
    # A client that retries three times: fails twice, then succeeds.
    assert smtplib_outcomes(srv, 3) == [code, code, "ok"]
    # The rule is spent for the whole server (count "server", the default): Nodemailer goes straight through.
    assert [nodemailer_outcome(srv) for _ in range(2)] == ["ok", "ok"]
    assert len(srv.wait_for_messages(3)) == 3
    assert [f[1:3] for f in fault_lines(srv)] == [("rule 0", stage)] * 2


def test_times_counted_per_server_across_clients(fault_server):
    srv = fault_server([reply_rule("rcpt", "451 4.3.0 Try again", times=2, rcpt="*@example.com")])
    # Nodemailer sends three times: its first two fail, the third succeeds.
    assert [nodemailer_outcome(srv, to="a@example.com") for _ in range(3)] == ["451", "451", "ok"]
    assert smtplib_outcomes(srv, 1, rcpts=["a@example.com"]) == ["ok"]
    # Recipients the rule does not match never counted.
    assert smtplib_outcomes(srv, 1, rcpts=["a@example.org"]) == ["ok"]
    assert len(srv.wait_for_messages(3)) == 3


def test_times_counted_per_connection(fault_server):
    srv = fault_server([reply_rule("rcpt", "452 4.5.3 Too many recipients this time", times=2, count="connection")])
    rcpts = [f"r{i}@example.org" for i in range(4)]
    # Each connection starts its own count: the first two recipients of every connection are refused.
    for _ in range(3):
        refused = smtplib_send(srv, rcpts=rcpts)
        assert refused == {r: (452, b"4.5.3 Too many recipients this time") for r in rcpts[:2]}, refused
    r = nodemailer(srv, {"to": rcpts})
    assert r["ok"] is True and r["accepted"] == rcpts[2:] and r["rejected"] == rcpts[:2], r
    messages = srv.wait_for_messages(4)
    assert all(m.recipients == rcpts[2:] for m in messages)
    assert len(fault_lines(srv)) == 8


def test_times_counts_two_rcpts_of_one_connection_per_server(fault_server):
    srv = fault_server([reply_rule("rcpt", "451 4.3.0 Try again", times=2)])
    rcpts = ["a@example.org", "b@example.org", "c@example.org"]
    assert smtplib_send(srv, rcpts=rcpts) == {r: (451, b"4.3.0 Try again") for r in rcpts[:2]}
    assert smtplib_send(srv, rcpts=rcpts) == {}


def test_nth(fault_server):
    srv = fault_server([reply_rule("mail", "451 4.3.0 Only the third", nth=3)])
    assert smtplib_outcomes(srv, 5) == ["ok", "ok", "451", "ok", "ok"]


def test_every(fault_server):
    srv = fault_server([reply_rule("data_end", "451 4.3.0 Every other message", every=2)])
    assert smtplib_outcomes(srv, 6) == ["ok", "451"] * 3
    assert len(srv.wait_for_messages(3)) == 3


def test_every_per_connection_with_times(fault_server):
    srv = fault_server([reply_rule("rcpt", "450 4.2.1 Every third, twice per connection", every=3, times=2,
                                   count="connection")])
    rcpts = [f"r{i}@example.org" for i in range(9)]
    for _ in range(2):
        refused = smtplib_send(srv, rcpts=rcpts)
        assert sorted(refused) == ["r2@example.org", "r5@example.org"], refused  # the 3rd and 6th, not the 9th


# -- conditions ------------------------------------------------------------------------------------------------


def test_sender_rcpt_and_helo_globs(fault_server):
    srv = fault_server([
        reply_rule("mail", "553 5.7.1 Sender rejected", sender=["*@spam.example", "bulk-??@*"]),
        reply_rule("rcpt", "550 5.1.1 No such user here", rcpt="*@[xy].example.net"),
        reply_rule("ehlo", "550 5.7.1 Bad HELO", helo="*.dynamic.example"),
        reply_rule("data_end", "554 5.7.1 Not from you", sender="", rcpt="postmaster@*"),
    ])
    # Globs are case-insensitive; ? is one character.
    assert outcome(smtplib_send(srv, sender="Someone@SPAM.example")) == "553"
    assert outcome(smtplib_send(srv, sender="bulk-01@example.org")) == "553"
    assert outcome(smtplib_send(srv, sender="bulk-001@example.org")) == "ok"
    assert smtplib_send(srv, rcpts=["a@x.example.net", "b@z.example.net"]) == {
        "a@x.example.net": (550, b"5.1.1 No such user here")}
    with smtplib.SMTP(srv.host, srv.port, timeout=20, local_hostname="host-1.dynamic.example") as client:
        with pytest.raises(smtplib.SMTPHeloError):
            client.sendmail(SENDER, [RCPT], MSG)
    with smtplib.SMTP(srv.host, srv.port, timeout=20, local_hostname="mail.static.example") as client:
        assert client.sendmail(SENDER, [RCPT], MSG) == {}
    # The null sender is the glob "", and a rule's conditions must all hold.
    assert outcome(smtplib_send(srv, sender="<>", rcpts=["postmaster@example.org"])) == "554"
    assert outcome(smtplib_send(srv, sender="<>", rcpts=["user@example.org"])) == "ok"
    assert outcome(smtplib_send(srv, sender="a@example.org", rcpts=["postmaster@example.org"])) == "ok"
    # The same with the other clients.
    check_clients(srv, sender="news@spam.example",
                  nodemailer={"code": "EENVELOPE", "responseCode": 553, "command": "MAIL FROM"},
                  swaks=(23, ["553 5.7.1 Sender rejected"]))
    check_swaks(srv, (22, ["550 5.7.1 Bad HELO", "550 5.7.1 Bad HELO"]), "--helo", "pc7.dynamic.example")
    check_nodemailer(srv, {"code": "EPROTOCOL", "responseCode": 550, "command": "HELO"}, name="pc7.dynamic.example")


def test_data_end_rcpt_glob_matches_any_recipient(fault_server):
    srv = fault_server([reply_rule("data_end", "550 5.7.1 One of them is not allowed", rcpt="blocked@*")])
    assert outcome(smtplib_send(srv, rcpts=["a@example.org", "blocked@example.org"])) == "550"
    assert outcome(smtplib_send(srv, rcpts=["a@example.org", "b@example.org"])) == "ok"


def test_listener_condition(fault_server):
    srv = fault_server([reply_rule("greeting", "421 4.3.2 Submission is closed", listener="submission"),
                        reply_rule("greeting", "421 4.3.2 Not this one either", listener=["smtps", "submission"])])
    with srv.connect() as c:
        c.expect(220)  # the smtp listener is not named
    sub = srv.listener("submission")
    with pytest.raises(smtplib.SMTPConnectError) as e:
        smtplib.SMTP(sub["host"], sub["port"], timeout=20)
    assert (e.value.smtp_code, e.value.smtp_error) == (421, b"4.3.2 Submission is closed")  # the first rule
    r = nodemailer(srv, {}, listener="submission")
    assert r["ok"] is False and r["responseCode"] == 421, r
    assert outcome(smtplib_send(srv)) == "ok"
    assert {f[1] for f in fault_lines(srv)} == {"rule 0"}


@pytest.mark.parametrize("cidr, fires", [("127.0.0.1", True), ("127.0.0.0/8", True), ("10.0.0.0/8", False),
                                         (["10.0.0.0/8", "127.0.0.1/32"], True), ("::1/128", False),
                                         ("0.0.0.0/0", True)])
def test_client_cidr_condition(fault_server, cidr, fires):
    srv = fault_server([reply_rule("mail", "554 5.7.1 Client host blocked", client=cidr)])
    expected = "554" if fires else "ok"
    assert outcome(smtplib_send(srv)) == expected
    assert nodemailer_outcome(srv) == expected


def test_client_condition_tells_loopback_addresses_apart(fault_server):
    srv = fault_server([reply_rule("mail", "554 5.7.1 Your address is listed", client="127.0.0.2/32")])
    assert outcome(smtplib_send(srv)) == "ok"
    assert outcome(smtplib_send(srv, source="127.0.0.2")) == "554"
    check_nodemailer(srv, {"code": "EENVELOPE", "responseCode": 554}, localAddress="127.0.0.2")
    check_nodemailer(srv, OK, localAddress="127.0.0.3")


def tls_context():
    return ssl.create_default_context(cafile=ca_file())


def test_tls_condition(fault_server):
    srv = fault_server([reply_rule("mail", "530 5.7.0 Must issue a STARTTLS command first", tls=False),
                        reply_rule("data_end", "250 2.0.0 Ok: delivered over TLS", tls=True)])
    # Without STARTTLS: refused.
    e = smtplib_send(srv)
    assert outcome(e) == "530" and e.smtp_error == b"5.7.0 Must issue a STARTTLS command first"
    check_clients(srv, nodemailer={"code": "EENVELOPE", "responseCode": 530}, swaks=(23, None))
    # With STARTTLS: accepted, and the tls=true rule changes the final reply.
    with smtplib_client(srv) as client:
        client.starttls(context=tls_context())
        client.ehlo("tls.example")
        client.mail(SENDER)
        client.rcpt(RCPT)
        assert client.data(MSG) == (250, b"2.0.0 Ok: delivered over TLS")
    check_nodemailer(srv, {"ok": True, "response": "250 2.0.0 Ok: delivered over TLS"}, ignoreTLS=False,
                     requireTLS=True, tls={"ca": open(ca_file()).read()})
    messages = srv.wait_for_messages(2)
    assert all(m["tls"] for m in messages), [m.envelope for m in messages]


def test_auth_and_user_conditions(fault_server):
    srv = fault_server([
        reply_rule("auth", "535 5.7.8 Account suspended", user="suspended@*"),
        reply_rule("mail", "530 5.7.0 Authentication required", auth=False),
        reply_rule("mail", "550 5.7.1 Wrong password, but the rule says so", auth=True, user="app@*",
                   sender="forbidden@*"),
        reply_rule("auth", "454 4.7.0 Temporary authentication failure", auth=False),
    ], "--user", "app@example.org:secret", "--user", "suspended@example.org:secret")
    # Not logged in: refused at MAIL.
    assert outcome(smtplib_send(srv)) == "530"
    check_nodemailer(srv, {"code": "EENVELOPE", "responseCode": 530, "command": "MAIL FROM"})
    # Logged in: accepted.
    check_nodemailer(srv, OK, auth={"user": "app@example.org", "pass": "secret"})
    with smtplib_client(srv) as client:
        client.login("app@example.org", "secret")
        assert client.sendmail(SENDER, [RCPT], MSG) == {}
        with pytest.raises(smtplib.SMTPSenderRefused) as e:
            client.sendmail("forbidden@example.org", [RCPT], MSG)
        assert e.value.smtp_code == 550
    # At the auth stage, "auth" says whether the credentials were right, and "user" who tries.
    with smtplib_client(srv) as client:
        with pytest.raises(smtplib.SMTPAuthenticationError) as e:
            client.login("suspended@example.org", "secret")
        assert (e.value.smtp_code, e.value.smtp_error) == (535, b"5.7.8 Account suspended")
    check_nodemailer(srv, {"code": "EAUTH", "responseCode": 454, "response": "454 4.7.0 Temporary authentication failure"},
                     auth={"user": "app@example.org", "pass": "wrong"})
    assert len(srv.wait_for_messages(2)) == 2


def test_until_window_fail_for_two_seconds_then_recover(fault_server):
    srv = fault_server([reply_rule("mail", "451 4.3.2 System not accepting network messages", until="2s")])
    started = time.monotonic()  # the profile was loaded just before: the window ends within 2 s of now
    outcomes = []
    while time.monotonic() - started < 10:
        result = outcome(smtplib_send(srv))
        outcomes.append(result)
        if result == "ok":
            break
        time.sleep(0.2)
    recovered = time.monotonic() - started
    assert outcomes[0] == "451" and outcomes[-1] == "ok" and set(outcomes[:-1]) == {"451"}, outcomes
    assert 1.0 <= recovered, recovered  # the loop's 10 s is the hang guard; the window: test_time_windows
    assert nodemailer_outcome(srv) == "ok"


def test_after_window(fault_server):
    window = 4.0
    started = time.monotonic()  # before the profile is in force: at least the time since then
    srv = fault_server([reply_rule("rcpt", "452 4.3.1 Insufficient system storage", after=f"{window:g}s")])
    before = [outcome(smtplib_send(srv)), nodemailer_outcome(srv)]
    if time.monotonic() - started < window:  # Node may take seconds to start on a loaded machine
        assert before == ["ok", "ok"]
    time.sleep(max(0.0, started + window + 0.1 - time.monotonic()))
    assert outcome(smtplib_send(srv)) == "452"
    assert nodemailer_outcome(srv) == "452"


def test_after_and_until_window(fault_server):
    srv = fault_server([reply_rule("mail", "421 4.7.0 Maintenance window", after="1s", until="2500ms")])
    assert outcome(smtplib_send(srv)) == "ok"
    time.sleep(1.3)
    assert outcome(smtplib_send(srv)) == "421"
    time.sleep(1.5)
    assert outcome(smtplib_send(srv)) == "ok"


def test_first_matching_rule_decides(fault_server):
    srv = fault_server([reply_rule("rcpt", "550 5.1.1 First rule", rcpt="a@*"),
                        reply_rule("rcpt", "551 5.1.6 Second rule")])
    refused = smtplib_send(srv, rcpts=["a@example.org", "b@example.org"])
    assert refused.recipients == {"a@example.org": (550, b"5.1.1 First rule"),
                                  "b@example.org": (551, b"5.1.6 Second rule")}
    assert [f[1] for f in fault_lines(srv)] == ["rule 0", "rule 1"]


def test_rule_name_in_transcript(fault_server):
    srv = fault_server([{"name": "flaky-rcpt", "when": {"stage": "rcpt", "times": 1},
                         "do": {"reply": "451 4.3.0 Temporary failure, try again"}}])
    assert outcome(smtplib_send(srv)) == "451"
    srv.wait_for_log(r"(?m)#1 fault rule 0 \(flaky-rcpt\) at rcpt: reply 451 4.3.0 Temporary failure, try again$")


# -- probability with a seed -----------------------------------------------------------------------------------


def probability_sequence(fault_server, seed, n=30):
    srv = fault_server({"seed": seed, "rules": [reply_rule("mail", "451 4.3.0 Unlucky", probability=0.4)]})
    sequence = smtplib_outcomes(srv, n)
    assert set(sequence) <= {"ok", "451"}, sequence
    srv.stop()
    return "".join("x" if s == "451" else "." for s in sequence)


def test_probability_with_seed_repeats_exactly(fault_server):
    first = probability_sequence(fault_server, 7)
    again = probability_sequence(fault_server, 7)
    other = probability_sequence(fault_server, 8)
    assert first == again, (first, again)
    assert first != other, (first, other)
    for seq in (first, other):
        assert 4 <= seq.count("x") <= 20, seq  # 0.4 of 30 is 12


def test_probability_zero_and_one(fault_server):
    srv = fault_server([reply_rule("mail", "451 4.3.0 Never", probability=0, sender="never@*"),
                        reply_rule("mail", "451 4.3.0 Always", probability=1)])
    assert smtplib_outcomes(srv, 3, sender="never@example.org") == ["451"] * 3  # falls through to the next rule
    assert {f[1] for f in fault_lines(srv)} == {"rule 1"}


# -- greylisting -----------------------------------------------------------------------------------------------


def test_greylisting(fault_server):
    # The period is long enough for the retries below to run inside it on a loaded machine, where starting
    # Node and swaks takes seconds: the test asserts the order (deferred inside, accepted after).
    period = 8
    srv = fault_server([rule("rcpt", {"greylist": f"{period}s"})])
    grey = (f"4.2.0 <user@example.org>: Recipient address rejected: Greylisted, try again in {period} seconds"
            .encode())
    # A retry is told the time left, whole seconds rounded up: the period or less.
    retry = re.compile(r"450 4\.2\.0 <user@example\.org>: Recipient address rejected: Greylisted, try again in "
                       rf"[1-{period}] seconds?")
    # First try: 450 with the recipient in the text.
    first = time.monotonic()
    check_smtplib(srv, (smtplib.SMTPRecipientsRefused, {RCPT: (450, grey)}))
    # Retries before the period are still deferred, by every client.
    out = check_clients(srv, nodemailer={"code": "EENVELOPE", "responseCode": 450, "command": "RCPT TO"},
                        swaks=(24, None))
    assert retry.fullmatch(out["nodemailer"]["response"]), out["nodemailer"]["response"]
    (shown,) = swaks_error_replies(out["swaks"])
    assert retry.fullmatch(shown), shown
    # Another recipient, or another sender, is a new triple: deferred too.
    assert outcome(smtplib_send(srv, rcpts=["other@example.org"])) == "450"
    assert outcome(smtplib_send(srv, sender="other@example.org")) == "450"
    assert time.monotonic() - first < period, "too slow to test before the period"
    time.sleep(max(0.0, period + 0.1 - (time.monotonic() - first)))
    # After the period: accepted, and from then on the triple passes at once.
    check_clients(srv, smtplib={}, nodemailer=OK, swaks=(0, []))
    assert len(srv.wait_for_messages(3)) == 3
    faults = [f for f in fault_lines(srv) if f[2] == "rcpt"]
    assert len(faults) == 5 and all("Greylisted" in f[3] for f in faults)


def test_greylisting_with_a_custom_reply(fault_server):
    reply = "451 4.7.1 Please try again later (greylisted by smtpfault)"
    srv = fault_server([rule("rcpt", {"greylist": "500ms", "reply": reply})])
    check_nodemailer(srv, {"code": "EENVELOPE", "responseCode": 451, "response": reply})
    assert smtplib_send(srv).recipients == {RCPT: (451, reply[4:].encode())}
    time.sleep(0.6)
    r = nodemailer(srv)
    assert r["ok"] is True, r
    (m,) = srv.wait_for_messages(1)
    assert m.id == queued_id(r["response"])
