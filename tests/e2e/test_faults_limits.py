"""
Profile settings that are not rules (docs/profiles.md), through real clients: provider-style rate limits,
magic addresses (and turning them off), EHLO capabilities removed, and the server settings (size,
max_recipients, hostname, greeting, users, auth_mechanisms).
"""

import smtplib
import subprocess

import pytest

from conftest import queued_id
from faultkit import (OK, RCPT, SENDER, check_clients, check_nodemailer, check_phpmailer, check_smtplib,
                      check_swaks, expect_log_count, fault_lines, fault_server, nodemailer, phpmailer, reply_rule, smtplib_client,
                      smtplib_send)

fault_server = fault_server  # the fixture, imported from faultkit

MSG = b"Subject: limits\r\n\r\nlimits\r\n"
PHP_CONNECT_FAILED = "SMTP connect() failed. https://github.com/PHPMailer/PHPMailer/wiki/Troubleshooting"


def sendmails(client, n, sender=SENDER):
    """n messages over one smtplib connection: 'ok' for each accepted, then the exception that ended it."""
    out = []
    for _ in range(n):
        try:
            assert client.sendmail(sender, [RCPT], MSG) == {}
            out.append("ok")
        except smtplib.SMTPResponseException as e:
            out.append(e.smtp_code)
            break
    return out


# -- limits ---------------------------------------------------------------------------------------------------


def test_connections_per_client(fault_server):
    too_many = "421 4.7.0 Too many connections from your IP, try again later"
    srv = fault_server({"limits": {"connections_per_client": 2}})
    first, second = srv.connect(), srv.connect()
    try:
        first.expect(220)
        second.expect(220)
        # The third gets the 421 instead of the greeting, and is closed.
        with srv.connect() as third:
            assert third.read_until_closed() == too_many.encode() + b"\r\n"
        check_clients(srv,
                      nodemailer={"code": "EPROTOCOL", "responseCode": 421, "command": "CONN", "response": too_many},
                      phpmailer=("SMTP Error: Could not connect to SMTP host.",
                                 "SMTP Error: Could not connect to SMTP host.", PHP_CONNECT_FAILED),
                      swaks=(21, [too_many]),
                      smtplib=(smtplib.SMTPConnectError, 421, too_many[4:].encode()))
        # Another client address is another count.
        with smtplib_client(srv, source="127.0.0.2") as client:
            assert client.sendmail(SENDER, [RCPT], MSG) == {}
    finally:
        first.close()
        second.close()
    # Once one of them is gone, a connection is welcome again.
    srv.wait_for_log(r"#1 close client closed the connection")
    srv.wait_for_log(r"#2 close client closed the connection")
    assert smtplib_send(srv) == {}
    faults = fault_lines(srv)
    assert len(faults) == 6
    assert {f[1:] for f in faults} == {("limit connections_per_client (2)", "connect",
                                        f"reply {too_many}, then close the connection")}
    srv.wait_for_log("close fault: refused at connect", count=5)


def test_connections_per_client_custom_reply(fault_server):
    reply = "554 5.7.1 Connection limit reached"
    srv = fault_server({"limits": {"connections_per_client": {"max": 1, "reply": reply}}})
    with srv.connect() as first:
        first.expect(220)
        check_clients(srv, nodemailer={"code": "EPROTOCOL", "responseCode": 554, "response": reply},
                      smtplib=(smtplib.SMTPConnectError, 554, reply[4:].encode()))


def test_messages_per_connection_421_closes(fault_server):
    reply = "421 4.7.0 Too many messages for this session, try again later"
    srv = fault_server({"limits": {"messages_per_connection": 2}})
    with smtplib_client(srv) as client:
        assert sendmails(client, 3) == ["ok", "ok", 421]
        with pytest.raises(smtplib.SMTPServerDisconnected):
            client.noop()
    # PHPMailer keeps the connection: the third message fails.
    result = phpmailer(srv, [{}, {}, {}], keepAlive=True)
    assert [r["ok"] for r in result["results"]] == [True, True, False]
    assert result["results"][2]["exception"]["message"].startswith(
        f"The following From address failed: app@example.org : MAIL FROM command failed,{reply[10:]}")
    # A Nodemailer pool meets the 421 on its third message, opens a new connection and delivers it there.
    r = nodemailer(srv, messages=[{}, {}, {}], pool=True, maxConnections=1, maxMessages=100)
    assert [m["ok"] for m in r["results"]] == [True, True, True], r["results"]
    messages = srv.wait_for_messages(7)
    assert len(messages) == 7
    nm_sessions = {m["session"] for m in messages if m.id in {queued_id(x["response"]) for x in r["results"]}}
    assert len(nm_sessions) == 2
    assert len([f for f in fault_lines(srv) if f[1] == "limit messages_per_connection (2)"]) == 3


def test_messages_per_connection_custom_reply_keeps_the_connection(fault_server):
    reply = "452 4.5.3 One message per connection, please"
    srv = fault_server({"limits": {"messages_per_connection": {"max": 1, "reply": reply}}})
    with smtplib_client(srv) as client:
        assert sendmails(client, 2) == ["ok", 452]
        assert client.noop() == (250, b"2.0.0 Ok")  # not a 421: the session goes on
        assert sendmails(client, 1) == [452]
    assert smtplib_send(srv) == {}  # a new connection, a new count


def test_messages_per_minute_per_client_ses_style(fault_server):
    reply = "454 Throttling failure: Maximum sending rate exceeded."
    srv = fault_server({"limits": {"messages_per_minute": {"max": 3, "reply": reply}}})
    with smtplib_client(srv) as client:
        assert sendmails(client, 2) == ["ok", "ok"]
    # Counted per client address, across connections.
    check_nodemailer(srv, OK)
    check_clients(srv, nodemailer={"code": "EENVELOPE", "responseCode": 454, "command": "MAIL FROM", "response": reply},
                  phpmailer=(None, ["MAIL FROM command failed,Throttling failure: Maximum sending rate exceeded.",
                                    "SMTP code: 454"]),
                  swaks=(23, [reply]),
                  smtplib=(smtplib.SMTPSenderRefused, 454, reply[4:].encode()))
    # Another client address has its own minute.
    with smtplib_client(srv, source="127.0.0.2") as client:
        assert sendmails(client, 4) == ["ok", "ok", "ok", 454]
    assert len(srv.wait_for_messages(6)) == 6


def test_messages_per_minute_per_server_default_reply(fault_server):
    srv = fault_server({"limits": {"messages_per_minute": {"max": 2, "per": "server"}}})
    with smtplib_client(srv, source="127.0.0.2") as client:
        assert sendmails(client, 1) == ["ok"]
    with smtplib_client(srv, source="127.0.0.3") as client:
        assert sendmails(client, 2) == ["ok", 450]
    e = smtplib_send(srv)
    assert (e.smtp_code, e.smtp_error) == (450, b"4.7.1 Error: too much mail, slow down")


def test_rule_comes_before_limits(fault_server):
    srv = fault_server({"limits": {"messages_per_connection": 1},
                        "rules": [reply_rule("mail", "250 2.1.0 Rules first", sender="vip@*")]})
    with smtplib_client(srv) as client:
        assert sendmails(client, 1) == ["ok"]
        assert sendmails(client, 2, sender="vip@example.org") == ["ok", "ok"]  # the rule answers, not the limit
        assert sendmails(client, 1) == [421]


# -- magic addresses ------------------------------------------------------------------------------------------

# (sender, recipient, the reply, Nodemailer's code and command, PHPMailer's ErrorInfo fragment, swaks' exit,
# smtplib's exception)
MAGIC = [
    pytest.param(SENDER, "rcpt550@example.com", "550 5.1.1 Recipient address rejected: User unknown",
                 "EENVELOPE", "RCPT TO", "The following recipients failed: rcpt550@example.com: Recipient address "
                 "rejected: User unknown", 24, smtplib.SMTPRecipientsRefused, id="rcpt550"),
    pytest.param(SENDER, "rcpt452_4.5.3@example.com", "452 4.5.3 Insufficient system storage",
                 "EENVELOPE", "RCPT TO", "The following recipients failed: rcpt452_4.5.3@example.com: Insufficient "
                 "system storage", 24, smtplib.SMTPRecipientsRefused, id="rcpt452_4.5.3"),
    pytest.param("mail553@example.com", RCPT, "553 5.1.3 Requested action not taken: mailbox name not allowed",
                 "EENVELOPE", "MAIL FROM", "MAIL FROM command failed,Requested action not taken: mailbox name not "
                 "allowed", 23, smtplib.SMTPSenderRefused, id="mail553"),
    pytest.param(SENDER, "data554@example.com", "554 5.7.1 Transaction failed",
                 "EENVELOPE", "DATA", "DATA command failed Detail: Transaction failed", 25, smtplib.SMTPDataError,
                 id="data554"),
    pytest.param("dataend552@example.com", RCPT, "552 5.3.4 Message size exceeds fixed maximum message size",
                 "EMESSAGE", "DATA", "DATA END command failed Detail: Message size exceeds fixed maximum message size",
                 26, smtplib.SMTPDataError, id="dataend552"),
    pytest.param(SENDER, "dataend554_5.7.1@example.com", "554 5.7.1 Transaction failed",
                 "EMESSAGE", "DATA", "DATA END command failed Detail: Transaction failed", 26, smtplib.SMTPDataError,
                 id="dataend554_5.7.1"),
    pytest.param("mail421+retry1@example.com", RCPT, "421 4.7.0 Service not available, closing transmission channel",
                 "EENVELOPE", "MAIL FROM", "MAIL FROM command failed,Service not available, closing transmission "
                 "channel", 23, smtplib.SMTPSenderRefused, id="mail421+retry1"),
]


@pytest.mark.parametrize("sender, rcpt, reply, nm_code, nm_command, php_info, swaks_code, smtp_error", MAGIC)
def test_magic_address(fault_server, sender, rcpt, reply, nm_code, nm_command, php_info, swaks_code, smtp_error):
    srv = fault_server({})  # an empty profile: magic addresses are on
    code, text = int(reply[:3]), reply[4:].encode()
    check_clients(
        srv, sender=sender, rcpts=[rcpt],
        nodemailer={"code": nm_code, "responseCode": code, "command": nm_command, "response": reply},
        phpmailer=(None, [php_info, f"SMTP code: {code}"] if smtp_error is not smtplib.SMTPRecipientsRefused
                   else [php_info]),
        swaks=(swaks_code, [reply]),
        smtplib=(smtp_error, {rcpt: (code, text)}) if smtp_error is smtplib.SMTPRecipientsRefused
        else (smtp_error, code, text))
    assert srv.message_ids() == []
    magic = sender if sender != SENDER else rcpt
    faults = fault_lines(srv)
    assert len(faults) == 5 and {f[1] for f in faults} == {f"magic address {magic}"}
    if code == 421:
        expect_log_count(srv, "close fault: connection closed", 5)


def test_magic_recipient_among_others(fault_server):
    srv = fault_server({})
    rcpts = ["a@example.org", "rcpt550+one@example.org", "rcpt551_5.1.6-two@example.org", "b@example.org"]
    assert smtplib_send(srv, rcpts=rcpts) == {
        "rcpt550+one@example.org": (550, b"5.1.1 Recipient address rejected: User unknown"),
        "rcpt551_5.1.6-two@example.org": (551, b"5.1.6 User not local")}
    (m,) = srv.wait_for_messages(1)
    assert m.recipients == ["a@example.org", "b@example.org"]


def test_not_quite_magic_addresses_are_ordinary(fault_server):
    srv = fault_server({})
    rcpts = ["rcpt250@example.org", "rcpt55@example.org", "rcpt5500@example.org", "mailbox@example.org",
             "rcpt550x@example.org", "rcpt600@example.org"]
    assert smtplib_send(srv, rcpts=rcpts) == {}
    assert fault_lines(srv) == []


@pytest.mark.parametrize("how", ["--no-magic", "profile"])
def test_magic_off(fault_server, how):
    if how == "--no-magic":
        srv = fault_server({}, "--no-magic")
    else:
        srv = fault_server({"magic": False})
    check_clients(srv, sender="mail553@example.com", rcpts=["rcpt550@example.com", "dataend552@example.com"],
                  nodemailer=OK, phpmailer=OK, swaks=(0, []), smtplib={})
    assert len(srv.wait_for_messages(5)) == 5
    assert fault_lines(srv) == []


def test_profile_magic_true_overrides_no_magic(fault_server):
    srv = fault_server({"magic": True}, "--no-magic")
    assert smtplib_send(srv, rcpts=["rcpt550@example.com"]).recipients == {
        "rcpt550@example.com": (550, b"5.1.1 Recipient address rejected: User unknown")}


def test_rules_take_precedence_over_magic(fault_server):
    srv = fault_server([reply_rule("rcpt", "250 2.1.5 A rule decides first", rcpt="rcpt550@*"),
                        reply_rule("mail", "451 4.3.0 Not the magic 553", sender="mail553@*")])
    assert smtplib_send(srv, rcpts=["rcpt550@example.com"]) == {}
    e = smtplib_send(srv, sender="mail553@example.com")
    assert (e.smtp_code, e.smtp_error) == (451, b"4.3.0 Not the magic 553")
    # Where no rule matches, magic still works.
    assert smtplib_send(srv, rcpts=["rcpt452@example.com"]).recipients == {
        "rcpt452@example.com": (452, b"4.3.1 Insufficient system storage")}
    assert [f[1] for f in fault_lines(srv)] == ["rule 0", "rule 1", "magic address rcpt452@example.com"]


# -- EHLO capabilities removed ----------------------------------------------------------------------------------


def ehlo_keywords(srv):
    with srv.connect() as c:
        return [line.split(" ")[0] for line in c.greet().lines[1:]]


def test_ehlo_remove_pipelining(fault_server):
    srv = fault_server({"ehlo": {"remove": ["PIPELINING"]}})
    assert "PIPELINING" not in ehlo_keywords(srv)
    r = nodemailer(srv, {"to": ["a@example.org", "b@example.org"]})
    assert r["ok"] is True, r
    # One command per round trip: every command Nodemailer sends waits for the reply to the one before.
    wire = [e["tnx"] for e in r["log"] if e["tnx"] in ("client", "server")]
    first_mail = next(i for i, e in enumerate(r["log"]) if e["tnx"] == "client" and e["text"].startswith("MAIL"))
    wire = [e["tnx"] for e in r["log"][first_mail:] if e["tnx"] in ("client", "server")]
    assert wire[:8] == ["client", "server"] * 4, wire  # MAIL, RCPT, RCPT, DATA
    p = check_swaks(srv, (0, []), "--pipeline")  # swaks falls back to one command at a time
    assert "-> MAIL FROM:<app@example.org>\n<-  250 " in p.stdout, p.stdout
    # Without pipelining, Nodemailer reports the 550 before a close (compare test_550_then_close).
    srv2 = fault_server({"ehlo": {"remove": ["PIPELINING"]},
                         "rules": [{"when": {"stage": "mail"}, "do": {"reply": "550 5.7.1 Blocked", "close": True}}]})
    check_nodemailer(srv2, {"code": "EENVELOPE", "responseCode": 550, "command": "MAIL FROM",
                            "response": "550 5.7.1 Blocked"})


def test_ehlo_remove_size_8bitmime_chunking(fault_server):
    srv = fault_server({"ehlo": {"remove": ["SIZE", "8BITMIME", "CHUNKING"]}})
    keywords = ehlo_keywords(srv)
    for cap in ("SIZE", "8BITMIME", "CHUNKING", "BINARYMIME"):  # BINARYMIME goes with CHUNKING
        assert cap not in keywords, keywords
    assert "PIPELINING" in keywords and "SMTPUTF8" in keywords
    with smtplib_client(srv) as client:
        assert not client.has_extn("size") and not client.has_extn("8bitmime") and not client.has_extn("chunking")
        assert client.sendmail(SENDER, [RCPT], MSG) == {}  # without SIZE=, as SIZE is not offered
    check_clients(srv, nodemailer=OK, phpmailer=OK, swaks=(0, []))
    messages = srv.wait_for_messages(5)
    assert "declared_size" not in messages[0].envelope


def php_has_intl():
    php = subprocess.run(["php", "-r", "echo extension_loaded('intl') ? 1 : 0;"], capture_output=True, text=True)
    return php.stdout.strip() == "1"


def test_ehlo_remove_smtputf8(fault_server):
    srv = fault_server({"ehlo": {"remove": ["SMTPUTF8"]}})
    sender = "jörg@exämple.org"
    refused = "553 5.6.7 Error: non-ASCII sender address needs the SMTPUTF8 parameter"
    # Nodemailer and swaks send the address without SMTPUTF8: the server refuses it.
    check_clients(srv, sender=sender, rcpts=["用户@例子.广告"],
                  nodemailer={"code": "EENVELOPE", "responseCode": 553, "command": "MAIL FROM", "response": refused},
                  swaks=(23, [refused]))
    # smtplib will not send it at all.
    with smtplib_client(srv) as client:
        with pytest.raises(smtplib.SMTPNotSupportedError, match="SMTPUTF8 not supported by server"):
            client.sendmail(sender, [RCPT], MSG, mail_options=["SMTPUTF8"])
        with pytest.raises(UnicodeEncodeError):
            client.sendmail(sender, [RCPT], MSG)
    # PHPMailer refuses a non-ASCII address itself, offered SMTPUTF8 or not; with PHP's intl extension (which
    # Debian's composer brings) it first turns the domain into punycode, and still refuses the local part.
    (r,) = phpmailer(srv, [{"from": sender}])["results"]
    shown = "jörg@xn--exmple-cua.org" if php_has_intl() else sender
    assert r["exception"]["message"] == f"Invalid address:  (From): {shown}", r
    assert srv.message_ids() == []


def test_ehlo_remove_auth(fault_server):
    srv = fault_server({"ehlo": {"remove": ["AUTH"]}}, "--user", "app@example.org:secret")
    assert not any(k == "AUTH" for k in ehlo_keywords(srv))
    auth = {"user": "app@example.org", "pass": "secret"}
    # Nodemailer sends without logging in when AUTH is not offered (no error).
    check_nodemailer(srv, OK, auth=auth)
    check_phpmailer(srv, ("SMTP Error: Could not authenticate.", "SMTP Error: Could not authenticate.",
                          PHP_CONNECT_FAILED), auth={"user": "app@example.org", "password": "secret"})
    p = check_swaks(srv, (28, []), "--auth", "LOGIN", "--auth-user", "app@example.org", "--auth-password", "secret")
    assert "*** Host did not advertise authentication" in p.stderr
    with smtplib_client(srv) as client:
        with pytest.raises(smtplib.SMTPNotSupportedError, match="SMTP AUTH extension not supported by server"):
            client.login("app@example.org", "secret")
        # Sent anyway, AUTH is refused as by a server without it.
        assert client.docmd("AUTH", "PLAIN AGFwcEBleGFtcGxlLm9yZwBzZWNyZXQ=") == (
            502, b"5.5.1 Error: authentication not enabled")
    (m,) = srv.wait_for_messages(1)
    assert m["auth"] is None


def test_ehlo_remove_starttls(fault_server):
    srv = fault_server({"ehlo": {"remove": ["STARTTLS"]}})
    assert "STARTTLS" not in ehlo_keywords(srv)
    not_implemented = "502 5.5.1 Error: command not implemented"
    # Nodemailer with requireTLS sends STARTTLS anyway and fails; without it, sends in plain text.
    check_nodemailer(srv, {"code": "ETLS", "responseCode": 502, "command": "STARTTLS", "response": not_implemented,
                           "message": f"Error upgrading connection with STARTTLS: {not_implemented}"},
                     ignoreTLS=False, requireTLS=True)
    check_nodemailer(srv, OK, ignoreTLS=False)
    php_error = "SMTP Error: Could not connect to SMTP host. STARTTLS command failed Error: command not implemented\r\n"
    check_phpmailer(srv, (php_error, php_error, PHP_CONNECT_FAILED), secure="tls")
    p = check_swaks(srv, (29, []), "--tls")
    assert "*** Host did not advertise STARTTLS" in p.stderr
    with smtplib_client(srv) as client:
        with pytest.raises(smtplib.SMTPNotSupportedError, match="STARTTLS extension not supported by server"):
            client.starttls()
        assert client.docmd("STARTTLS") == (502, b"5.5.1 Error: command not implemented")
    assert len(srv.wait_for_messages(1)) == 1


# -- server settings ------------------------------------------------------------------------------------------


def test_server_size(fault_server):
    srv = fault_server({"server": {"size": "2K"}})
    too_big = "552 5.3.4 Error: message size exceeds fixed maximum message size (2048 octets)"
    body = "x" * 3000
    with smtplib_client(srv) as client:
        assert client.esmtp_features["size"] == "2048"
    check_nodemailer(srv, {"code": "EMESSAGE", "responseCode": 552, "command": "DATA", "response": too_big},
                     message={"text": body})
    (r,) = phpmailer(srv, [{"body": body}])["results"]
    assert "DATA END command failed Detail: Error: message size exceeds fixed maximum message size (2048 octets)" \
        in r["errorInfo"], r
    check_swaks(srv, (26, [too_big]), "--body", body)
    # smtplib declares SIZE=: refused at MAIL already.
    check_smtplib(srv, (smtplib.SMTPSenderRefused, 552, too_big[4:].encode()), msg=b"Subject: big\r\n\r\n" + body.encode())
    assert smtplib_send(srv) == {}  # a small one passes
    assert len(srv.wait_for_messages(1)) == 1


def test_server_max_recipients(fault_server):
    srv = fault_server({"server": {"max_recipients": 3}})
    rcpts = [f"r{i}@example.org" for i in range(5)]
    out = check_clients(srv, rcpts=rcpts,
                        nodemailer={"ok": True, "accepted": rcpts[:3], "rejected": rcpts[3:]},
                        swaks=(0, ["452 4.5.3 Error: too many recipients"] * 2),
                        smtplib={r: (452, b"4.5.3 Error: too many recipients") for r in rcpts[3:]})
    (r,) = phpmailer(srv, [{"to": rcpts}])["results"]
    assert r["errorInfo"] == ("SMTP Error: The following recipients failed: r3@example.org: Error: too many "
                              "recipients\r\nr4@example.org: Error: too many recipients\r\n"), r
    assert out["nodemailer"]["ok"]
    messages = srv.wait_for_messages(4)
    assert all(m.recipients == rcpts[:3] for m in messages)


def test_server_hostname_and_greeting(fault_server):
    srv = fault_server({"server": {"hostname": "smtp.gmail.com", "greeting": "ESMTP a1-20020a05 - gsmtp"}})
    p = check_swaks(srv, (0, []))
    assert "<-  220 smtp.gmail.com ESMTP a1-20020a05 - gsmtp" in p.stdout
    assert "<-  250-smtp.gmail.com\n" in p.stdout and "<-  221 2.0.0 smtp.gmail.com Bye" in p.stdout
    with smtplib.SMTP(srv.host, srv.port, timeout=20) as client:
        code, banner = client.ehlo("x.example")
        assert banner.split(b"\n")[0] == b"smtp.gmail.com"
        assert client.quit() == (221, b"2.0.0 smtp.gmail.com Bye")
    r = nodemailer(srv)
    assert r["ok"] is True
    assert [e["text"] for e in r["log"] if e["tnx"] == "server"][0] == "220 smtp.gmail.com ESMTP a1-20020a05 - gsmtp"


def test_server_users_replace_the_command_line_users(fault_server):
    srv = fault_server({"server": {"users": [{"user": "new@example.org", "password": "new-pw"}],
                                   "auth_mechanisms": ["LOGIN"]}},
                       "--user", "old@example.org:old-pw")
    invalid = "535 5.7.8 Authentication credentials invalid"
    with srv.connect() as c:
        assert "AUTH LOGIN" in c.greet().lines
    check_nodemailer(srv, {"code": "EAUTH", "responseCode": 535, "command": "AUTH LOGIN", "response": invalid},
                     auth={"user": "old@example.org", "pass": "old-pw"})
    check_nodemailer(srv, OK, auth={"user": "new@example.org", "pass": "new-pw"})
    with smtplib_client(srv) as client:
        with pytest.raises(smtplib.SMTPAuthenticationError):
            client.login("old@example.org", "old-pw")
    with smtplib_client(srv) as client:
        assert client.login("new@example.org", "new-pw") == (235, b"2.7.0 Authentication successful")
    check_swaks(srv, (28, [invalid]), "--auth", "LOGIN", "--auth-user", "old@example.org", "--auth-password",
                "old-pw")
    (m,) = srv.wait_for_messages(1)
    assert m["auth"] == "new@example.org"


def test_server_users_empty_list_accepts_anything(fault_server):
    srv = fault_server({"server": {"users": []}}, "--user", "old@example.org:old-pw")
    check_nodemailer(srv, OK, auth={"user": "anyone@example.org", "pass": "anything"})
    with smtplib_client(srv) as client:
        assert client.login("old@example.org", "wrong")[0] == 235
