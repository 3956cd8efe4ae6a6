"""
SMTP-level faults from a profile (docs/profiles.md), through real clients: a reply injected at every stage,
positive replies and discard, delay, drip, truncate, raw bytes and close after a reply.

Each test asserts what the clients themselves report (Nodemailer's err.code, responseCode, response and
command; PHPMailer's ErrorInfo or exception message, with and without exceptions; smtplib's exception class,
smtp_code and smtp_error; swaks' exit code and transcript), what the server kept, and the transcript's
"fault rule N ... at STAGE: ..." lines. Connection-level faults (refuse, blackhole, reset, hang) and TLS
faults are in other files.
"""

import re
import smtplib
import time

import pytest

from conftest import queued_id
from harness.env import HANG_GUARD
from faultkit import (OK, RCPT, SENDER, check_clients, check_nodemailer, check_phpmailer, check_smtplib,
                      check_swaks, elapsed, expect_log_count, fault_lines, fault_server, raw_envelope, raw_message,
                      nodemailer, phpmailer, reply_rule, replies_sent, rule, smtplib_client, wait_for_fault)

fault_server = fault_server  # the fixture, imported from faultkit

BOTH = (True, False)  # PHPMailer with exceptions, and without
# Without exceptions, PHPMailer's ErrorInfo after a failed connect (or login, or STARTTLS) is this pointer.
PHP_CONNECT_FAILED = "SMTP connect() failed. https://github.com/PHPMailer/PHPMailer/wiki/Troubleshooting"
PHP_NO_CONNECT = ("SMTP Error: Could not connect to SMTP host.", "SMTP Error: Could not connect to SMTP host.",
                  PHP_CONNECT_FAILED)


def php_mail_from_failed(text, code, enhanced):
    return (None, ["The following From address failed: app@example.org : MAIL FROM command failed",
                   f"Detail: {text}", f"SMTP code: {code} Additional SMTP info: {enhanced}"])


def php_data_failed(command, text, code, enhanced):
    return ("SMTP Error: data not accepted.", ["SMTP Error: data not accepted.", f"{command} command failed Detail: {text}",
                                               f"SMTP code: {code} Additional SMTP info: {enhanced}"])


# -- greeting -----------------------------------------------------------------------------------------------


def test_greeting_421_every_client_reports_it(fault_server):
    reply = "421 4.3.2 Service not available, closing channel"
    srv = fault_server([reply_rule("greeting", reply)])
    out = check_clients(
        srv,
        nodemailer={"code": "EPROTOCOL", "responseCode": 421, "command": "CONN", "response": reply,
                    "message": f"Invalid greeting. response={reply}: {reply}"},
        phpmailer=PHP_NO_CONNECT,
        swaks=(21, [reply]),  # swaks 21: error reading the banner
        smtplib=(smtplib.SMTPConnectError, 421, b"4.3.2 Service not available, closing channel"))
    assert [r["lastReply"] for r in out["phpmailer"]] == [reply, reply]
    # 421 closes: every session ends with the fault's close, none reached a command.
    faults = fault_lines(srv)
    assert len(faults) == 5 and {f[1:] for f in faults} == {("rule 0", "greeting", f"reply {reply}")}
    expect_log_count(srv, "close fault: connection closed", 5)
    assert " command " not in srv.log()


def test_greeting_554_refuses_service_then_503_until_quit(fault_server):
    srv = fault_server([reply_rule("greeting", "554 5.7.1 No SMTP service here")])
    with srv.connect() as c:
        c.expect(554, "5.7.1 No SMTP service here")
        # RFC 5321 3.1: the connection stays open, every command but QUIT gets 503.
        for line in ("EHLO client.example", "HELO client.example", "MAIL FROM:<a@example.org>", "NOOP", "RSET",
                     "XFOO"):
            c.cmd(line, 503, "5.5.1 Error: the server refused service at the greeting; only QUIT is accepted")
        c.cmd("QUIT", 221)
        assert c.read_until_closed() == b""

    out = check_clients(
        srv,
        nodemailer={"code": "EPROTOCOL", "responseCode": 554, "command": "CONN",
                    "response": "554 5.7.1 No SMTP service here"},
        phpmailer=PHP_NO_CONNECT,
        swaks=(21, ["554 5.7.1 No SMTP service here"]),
        smtplib=(smtplib.SMTPConnectError, 554, b"5.7.1 No SMTP service here"))
    # PHPMailer and swaks said QUIT, and got the polite 221.
    assert [r["lastReply"] for r in out["phpmailer"]] == ["221 2.0.0 localhost Bye"] * 2
    assert "<-  221 2.0.0 localhost Bye" in out["swaks"].stdout
    assert srv.message_ids() == []


# -- a reply at each command ----------------------------------------------------------------------------------


def test_ehlo_refused(fault_server):
    reply = "550 5.7.1 Client host rejected: go away"
    srv = fault_server([reply_rule("ehlo", reply)])
    check_clients(
        srv,
        # Nodemailer falls back to HELO, which is the same stage, and reports the HELO.
        nodemailer={"code": "EPROTOCOL", "responseCode": 550, "command": "HELO", "response": reply,
                    "message": f"Invalid HELO. response={reply}: {reply}"},
        # PHPMailer tries EHLO, then HELO, and goes on regardless: the MAIL gets the server's own 503.
        phpmailer=php_mail_from_failed("Error: send HELO/EHLO first", 503, "5.5.1"),
        swaks=(22, [reply, reply]),  # EHLO, then HELO
        # smtplib's sendmail tries EHLO, then HELO: SMTPHeloError.
        smtplib=(smtplib.SMTPHeloError, 550, b"5.7.1 Client host rejected: go away"))
    assert srv.message_ids() == []
    assert {f[2] for f in fault_lines(srv)} == {"ehlo"}


# (stage, injected reply, what each client reports, swaks' exit code); every one refuses the message.
REFUSALS = [
    pytest.param(
        "mail", "451 4.3.0 Sender temporarily rejected",
        {"code": "EENVELOPE", "command": "MAIL FROM", "message": "Mail command failed: 451 4.3.0 Sender temporarily rejected"},
        php_mail_from_failed("Sender temporarily rejected", 451, "4.3.0"),
        23, smtplib.SMTPSenderRefused, id="mail-451"),
    pytest.param(
        "mail", "421 4.7.0 Try again later, closing connection",  # no "close": a 421 closes anyway
        {"code": "EENVELOPE", "command": "MAIL FROM"},
        php_mail_from_failed("Try again later, closing connection", 421, "4.7.0"),
        23, smtplib.SMTPSenderRefused, id="mail-421-closes"),
    pytest.param(
        "rcpt", "550 5.1.1 User unknown",
        {"code": "EENVELOPE", "command": "RCPT TO",
         "message": "Can't send mail - all recipients were rejected: 550 5.1.1 User unknown"},
        (None, ["SMTP Error: The following recipients failed: user@example.org: User unknown"]),
        24, smtplib.SMTPRecipientsRefused, id="rcpt-550"),
    pytest.param(
        "data", "554 5.7.1 Transaction not permitted",
        {"code": "EENVELOPE", "command": "DATA", "message": "Data command failed: 554 5.7.1 Transaction not permitted"},
        php_data_failed("DATA", "Transaction not permitted", 554, "5.7.1"),
        25, smtplib.SMTPDataError, id="data-554"),
    pytest.param(
        "data_end", "552 5.2.2 Mailbox full",
        {"code": "EMESSAGE", "command": "DATA", "message": "Message failed: 552 5.2.2 Mailbox full"},
        php_data_failed("DATA END", "Mailbox full", 552, "5.2.2"),
        26, smtplib.SMTPDataError, id="data_end-552"),
]


@pytest.mark.parametrize("stage, reply, nm, php, swaks_code, smtp_error", REFUSALS)
def test_refused_at_stage(fault_server, stage, reply, nm, php, swaks_code, smtp_error):
    srv = fault_server([reply_rule(stage, reply)])
    code, text = int(reply[:3]), reply[4:].encode()
    check_clients(
        srv,
        nodemailer={**nm, "responseCode": code, "response": reply},
        phpmailer=php,
        swaks=(swaks_code, [reply]),
        smtplib=(smtp_error, {RCPT: (code, text)}) if smtp_error is smtplib.SMTPRecipientsRefused
        else (smtp_error, code, text))
    assert srv.message_ids() == []
    assert " message " not in srv.log()  # nothing was committed
    faults = fault_lines(srv)
    assert len(faults) == 5 and {f[1:] for f in faults} == {("rule 0", stage, f"reply {reply}")}
    if code == 421:
        expect_log_count(srv, "close fault: connection closed", 5)


def test_rcpt_refused_for_one_recipient_partial_delivery(fault_server):
    reply = "550 5.1.1 <bad@example.org>: Recipient address rejected: User unknown"
    srv = fault_server([reply_rule("rcpt", reply, rcpt="bad@*")])
    rcpts = ("good1@example.org", "bad@example.org", "good2@example.org")
    refused = ("SMTP Error: The following recipients failed: bad@example.org: "
               "<bad@example.org>: Recipient address rejected: User unknown\r\n")
    out = check_clients(
        srv, rcpts=rcpts,
        # Nodemailer and smtplib deliver to the two others and say which one was refused.
        nodemailer={"ok": True, "accepted": ["good1@example.org", "good2@example.org"],
                    "rejected": ["bad@example.org"]},
        # PHPMailer delivers too, and still calls it a failure.
        phpmailer=(refused, refused),
        swaks=(0, [reply]),  # some recipients were accepted: swaks goes on, exit 0
        smtplib={"bad@example.org": (550, reply[4:].encode())})
    assert out["phpmailer"][0]["transactionId"]
    messages = srv.wait_for_messages(5)
    assert len(messages) == 5
    assert all(m.recipients == ["good1@example.org", "good2@example.org"] for m in messages)


def test_rset_refused(fault_server):
    srv = fault_server([reply_rule("rset", "421 4.7.0 Too busy to reset, closing")])
    # PHPMailer sends RSET after each message of a kept-alive connection: the 421 ends it, and the
    # next message fails on the closed connection.
    result = phpmailer(srv, [{}, {}], keepAlive=True)
    first, second = result["results"]
    assert first["ok"] is True and first["lastReply"] == "421 4.7.0 Too busy to reset, closing"
    assert second["ok"] is False
    assert second["exception"]["message"].startswith("The following From address failed: app@example.org : "
                                                     "MAIL FROM command failed")
    assert "SMTP ERROR: RSET command failed: 421 4.7.0 Too busy to reset, closing" in result["debug"]
    with smtplib_client(srv) as client:
        assert client.rset() == (421, b"4.7.0 Too busy to reset, closing")
        with pytest.raises(smtplib.SMTPServerDisconnected):
            client.noop()
    assert len(srv.messages()) == 1


def test_vrfy_expn_noop_help_replies(fault_server):
    srv = fault_server([reply_rule("vrfy", "550 5.1.1 <nobody@example.org>: no such user"),
                        reply_rule("noop", "250 2.0.0 still here, slowly"),
                        reply_rule("help", "214 2.0.0 See https://help.example.org/smtp")])
    with smtplib_client(srv) as client:
        assert client.verify("nobody@example.org") == (550, b"5.1.1 <nobody@example.org>: no such user")
        assert client.expn("list") == (550, b"5.1.1 <nobody@example.org>: no such user")  # EXPN is the vrfy stage
        assert client.noop() == (250, b"2.0.0 still here, slowly")
        # The injected one-line 214 replaces the whole multi-line HELP reply.
        assert client.help() == b"2.0.0 See https://help.example.org/smtp"
    assert [f[2] for f in fault_lines(srv)] == ["vrfy", "vrfy", "noop", "help"]


def test_quit_reply(fault_server):
    reply = "421 4.3.0 Could not say goodbye properly"
    srv = fault_server([reply_rule("quit", reply)])
    # The message went through; only the goodbye is odd. Nodemailer and PHPMailer do not look at it,
    # swaks shows it as an error and still exits 0.
    check_clients(srv, nodemailer=OK, phpmailer=OK, swaks=(0, [reply]))
    with smtplib_client(srv) as client:
        assert client.sendmail(SENDER, [RCPT], b"Subject: q\r\n\r\nq\r\n") == {}
        assert client.quit() == (421, b"4.3.0 Could not say goodbye properly")
    assert len(srv.wait_for_messages(5)) == 5
    # QUIT ends the session whatever the reply.
    srv.wait_for_log("close client quit", count=3)


def test_unknown_command_gets_injected_250(fault_server):
    srv = fault_server([reply_rule("unknown", "250 2.0.0 XFOO accepted, whatever it means")])
    with srv.connect() as c:
        c.greet()
        c.cmd("XFOO bar", 250, "2.0.0 XFOO accepted, whatever it means")
        c.cmd("XBAR", 250)
        c.cmd("NOOP", 250, "2.0.0 Ok")  # known commands are not the unknown stage
    with smtplib_client(srv) as client:
        assert client.docmd("XCLIENT", "ADDR=10.0.0.1") == (250, b"2.0.0 XFOO accepted, whatever it means")
    assert [f[2] for f in fault_lines(srv)] == ["unknown"] * 3


GMAIL_535 = ["535-5.7.8 Username and Password not accepted. For more information, go to",
             "535 5.7.8  https://support.google.com/mail/?p=BadCredentials a1-20020a05 - gsmtp"]


def test_auth_535_with_provider_text(fault_server):
    srv = fault_server([reply_rule("auth", GMAIL_535)], "--user", "app@example.org:right")
    joined = "\n".join(GMAIL_535)
    # The right password, and still refused: the reply replaces the result.
    check_nodemailer(srv, {"code": "EAUTH", "responseCode": 535, "command": "AUTH PLAIN", "response": joined,
                           "message": f"Invalid login: {joined}"}, auth={"user": "app@example.org", "pass": "right"})
    check_phpmailer(srv, ("SMTP Error: Could not authenticate.", "SMTP Error: Could not authenticate.",
                          PHP_CONNECT_FAILED), auth={"user": "app@example.org", "password": "right"})
    check_swaks(srv, (28, GMAIL_535), "--auth", "LOGIN", "--auth-user", "app@example.org", "--auth-password", "right")
    with smtplib_client(srv) as client:
        with pytest.raises(smtplib.SMTPAuthenticationError) as e:
            client.login("app@example.org", "right")
    assert e.value.smtp_code == 535
    assert e.value.smtp_error == ("5.7.8 Username and Password not accepted. For more information, go to\n"
                                  "5.7.8  https://support.google.com/mail/?p=BadCredentials a1-20020a05 - gsmtp").encode()
    assert srv.message_ids() == []
    assert not re.search(r"#\d+ auth \S+ as ", srv.log())  # nobody logged in
    assert {f[2] for f in fault_lines(srv)} == {"auth"}


def test_auth_positive_reply_logs_in_with_wrong_password(fault_server):
    srv = fault_server([reply_rule("auth", "235 2.7.0 Accepted")], "--user", "app@example.org:right")
    r = nodemailer(srv, auth={"user": "app@example.org", "pass": "wrong"})
    assert r["ok"] is True, r
    with smtplib_client(srv) as client:
        assert client.login("app@example.org", "wrong") == (235, b"2.7.0 Accepted")
        assert client.sendmail(SENDER, [RCPT], b"Subject: a\r\n\r\na\r\n") == {}
    messages = srv.wait_for_messages(2)
    assert [m["auth"] for m in messages] == ["app@example.org"] * 2


def test_starttls_454(fault_server):
    reply = "454 4.7.0 TLS not available due to local problem"
    srv = fault_server([reply_rule("starttls", reply)])
    nm = {"code": "ETLS", "responseCode": 454, "command": "STARTTLS", "response": reply,
          "message": f"Error upgrading connection with STARTTLS: {reply}"}
    check_nodemailer(srv, nm, ignoreTLS=False, requireTLS=True)
    check_nodemailer(srv, nm, ignoreTLS=False)  # the same when STARTTLS is only opportunistic
    php_error = "SMTP Error: Could not connect to SMTP host. STARTTLS command failed TLS not available due to local problem\r\n"
    check_phpmailer(srv, (php_error, php_error, PHP_CONNECT_FAILED), secure="tls")
    check_swaks(srv, (29, [reply]), "--tls")
    check_swaks(srv, (0, [reply]), "--tls-optional")  # swaks goes on in plain text
    with smtplib_client(srv) as client:
        with pytest.raises(smtplib.SMTPResponseException) as e:
            client.starttls()
    assert (e.value.smtp_code, e.value.smtp_error) == (454, b"4.7.0 TLS not available due to local problem")
    assert len(srv.messages()) == 1  # swaks --tls-optional's
    assert {f[2] for f in fault_lines(srv)} == {"starttls"}


DMARC = ["550-5.7.26 Unauthenticated email from example.com is not accepted due to",
         "550-5.7.26 domain's DMARC policy.",
         "550 5.7.26 Learn more at https://support.google.com/mail/answer/2451690"]


@pytest.mark.parametrize("form", ["list", "newlines", "codes-added"])
def test_multiline_reply_arrives_intact(fault_server, form):
    if form == "list":
        reply = DMARC
    elif form == "newlines":
        reply = "\n".join(DMARC)
    else:  # the code is added to lines that lack it
        reply = [DMARC[0], DMARC[1][4:], DMARC[2][4:]]
    srv = fault_server([reply_rule("data_end", reply)])
    with srv.connect() as c:
        raw_message(c)
        assert [line.decode() for line in c.expect(550).raw] == DMARC
    check_smtplib(srv, (smtplib.SMTPDataError, 550, "\n".join(line[4:] for line in DMARC).encode()))
    if form == "list":
        out = check_clients(
            srv,
            nodemailer={"code": "EMESSAGE", "responseCode": 550, "command": "DATA", "response": "\n".join(DMARC)},
            phpmailer=php_data_failed("DATA END", "Unauthenticated email from example.com is not accepted due to\r\n"
                                      "domain's DMARC policy.\r\nLearn more at", 550, "5.7.26"),
            swaks=(26, DMARC))
        assert out["phpmailer"][0]["lastReply"] == "\r\n".join(DMARC)
    assert replies_sent(srv, 1)[-3:] == DMARC
    assert srv.message_ids() == []


# -- positive replies and discard -------------------------------------------------------------------------------


def test_positive_data_end_reply_keeps_message_and_client_sees_text(fault_server):
    reply = "250 OK id=1rAbCd-000Xyz-12"  # Exim's wording: PHPMailer parses the ID out of it
    srv = fault_server([reply_rule("data_end", reply)])
    out = check_clients(srv, nodemailer={"ok": True, "response": reply}, phpmailer=OK, swaks=(0, []))
    assert [r["transactionId"] for r in out["phpmailer"]] == ["1rAbCd-000Xyz-12"] * 2
    assert f"<-  {reply}" in out["swaks"].stdout
    with smtplib_client(srv) as client:
        client.mail(SENDER)
        client.rcpt(RCPT)
        assert client.data(b"Subject: p\r\n\r\np\r\n") == (250, b"OK id=1rAbCd-000Xyz-12")
    messages = srv.wait_for_messages(5)
    assert len(messages) == 5
    # The server still logs the real ID it kept, and sends the injected text instead.
    for m in messages:
        assert f" message {m.id}: " in srv.log()
    assert "queued as" not in " ".join(replies_sent(srv))


def test_positive_mail_and_rcpt_replies_only_change_the_text(fault_server):
    srv = fault_server([reply_rule("mail", "250 2.1.0 Sender looks fine to me"),
                        reply_rule("rcpt", "251 2.1.5 User not local; will forward")])
    with smtplib_client(srv) as client:
        assert client.mail(SENDER) == (250, b"2.1.0 Sender looks fine to me")
        assert client.rcpt(RCPT) == (251, b"2.1.5 User not local; will forward")
        code, resp = client.data(b"Subject: fwd\r\n\r\nx\r\n")
        assert code == 250 and queued_id(resp)
    # swaks wants a 250 for RCPT: it calls the 251 a failure, and gives up (exit 24).
    check_clients(srv, nodemailer={"ok": True, "accepted": [RCPT]}, phpmailer=OK,
                  swaks=(24, ["251 2.1.5 User not local; will forward"]))
    messages = srv.wait_for_messages(4)
    assert all(m.sender == SENDER and m.recipients == [RCPT] for m in messages)


def test_positive_ehlo_and_data_replies(fault_server):
    srv = fault_server([reply_rule("ehlo", "250 mx.example.com at your service"),
                        reply_rule("data", "354 Go ahead, make my day")])
    with smtplib_client(srv) as client:
        # The one-line 250 replaces the whole EHLO reply: no extensions are offered.
        assert client.ehlo_resp == b"mx.example.com at your service" and client.esmtp_features == {}
        assert client.sendmail(SENDER, [RCPT], b"Subject: x\r\n\r\nx\r\n") == {}
    r = check_nodemailer(srv, OK)
    assert "354 Go ahead, make my day" in [e["text"] for e in r["log"] if e["tnx"] == "server"]
    assert len(srv.wait_for_messages(2)) == 2


def test_bdat_data_and_data_end_stages(fault_server):
    srv = fault_server([reply_rule("data", "554 5.7.1 No chunks from you", sender="no@*"),
                        reply_rule("data_end", "250 2.0.0 Chunks kept, id=42", sender="yes@*")])
    with srv.connect() as c:
        raw_envelope(c, sender="no@example.org")
        # The first BDAT of a message is the data stage: refused, its bytes read and dropped.
        c.send(b"BDAT 5\r\nhello")
        c.expect(554, "5.7.1 No chunks from you")
        c.cmd("RSET", 250)
        c.cmd("MAIL FROM:<yes@example.org>", 250)
        c.cmd("RCPT TO:<b@example.org>", 250)
        c.send(b"BDAT 6\r\nhello ")
        c.expect(250, "2.0.0 6 octets received")
        # BDAT LAST is the data_end stage.
        c.send(b"BDAT 5 LAST\r\nworld")
        c.expect(250, "2.0.0 Chunks kept, id=42")
    (m,) = srv.wait_for_messages(1)
    assert m.raw == b"hello world" and m.sender == "yes@example.org"
    assert [f[2] for f in fault_lines(srv)] == ["data", "data_end"]


def test_discard_every_client_succeeds_nothing_stored(fault_server):
    srv = fault_server([rule("data_end", {"discard": True})])
    out = check_clients(srv, nodemailer=OK, phpmailer=OK, swaks=(0, []), smtplib={})
    ids = ([queued_id(out["nodemailer"]["response"]), queued_id(out["swaks"].stdout)]
           + [r["transactionId"] for r in out["phpmailer"]])
    assert len(set(ids)) == 4  # real, distinct IDs: a discarded message cannot be told from a kept one
    expect_log_count(srv, "discarded by the fault (not kept)", 5)
    assert srv.message_ids() == []
    for msg_id in ids:
        assert f"message {msg_id}: " in srv.log()
    assert {f[3] for f in fault_lines(srv)} == {"discard the message"}


# -- delay ------------------------------------------------------------------------------------------------------


def test_delay_then_reply(fault_server):
    reply = "451 4.7.1 Greylisted, slowly"
    srv = fault_server([rule("rcpt", {"delay": "1200ms", "reply": reply})])
    with smtplib_client(srv) as client:
        client.mail(SENDER)
        took, value = elapsed(client.rcpt, RCPT)
    assert value == (451, b"4.7.1 Greylisted, slowly")
    assert 1.1 <= took < HANG_GUARD, took
    took, _ = elapsed(check_clients, srv, nodemailer={"code": "EENVELOPE", "responseCode": 451, "command": "RCPT TO",
                                                      "response": reply})
    assert 1.1 <= took < HANG_GUARD, took
    took, _ = elapsed(check_swaks, srv, (24, [reply]))
    assert 1.1 <= took < HANG_GUARD, took
    wait_for_fault(srv, "rule 0", "rcpt", f"delay 1200 ms, then reply {reply}", count=3)


def test_delay_alone_is_a_slow_normal_reply(fault_server):
    srv = fault_server([rule("greeting", {"delay": "1s"}), rule("data_end", {"delay": 1000})])
    t0 = time.monotonic()
    with smtplib.SMTP(srv.host, srv.port, timeout=20) as client:
        greeted = time.monotonic() - t0
        client.ehlo("slow.example")
        client.mail(SENDER)
        client.rcpt(RCPT)
        took, (code, resp) = elapsed(client.data, b"Subject: slow\r\n\r\nslow\r\n")
    assert 0.9 <= greeted < HANG_GUARD and 0.9 <= took < HANG_GUARD, (greeted, took)
    assert code == 250 and queued_id(resp)
    took, _ = elapsed(check_clients, srv, nodemailer=OK, phpmailer=OK)  # 1 + 1 s, three times
    assert 5.8 <= took < 40, took
    assert len(srv.wait_for_messages(4)) == 4
    assert [f[3] for f in fault_lines(srv)[:2]] == ["delay 1000 ms", "delay 1000 ms"]


def test_greeting_delay_longer_than_the_client_waits(fault_server):
    srv = fault_server([rule("greeting", {"delay": "2500ms"})])
    check_nodemailer(srv, {"code": "ETIMEDOUT", "command": "CONN", "message": "Greeting never received"},
                     greetingTimeout=500)
    with pytest.raises((smtplib.SMTPServerDisconnected, TimeoutError)):
        smtplib.SMTP(srv.host, srv.port, timeout=0.5)
    assert srv.message_ids() == []


# -- drip -------------------------------------------------------------------------------------------------------


def test_drip_injected_reply(fault_server):
    reply = "550 5.7.1 This reply crawls in at forty bytes/s"  # 48 bytes with CRLF
    srv = fault_server([rule("rcpt", {"reply": reply, "drip": 40})])
    with smtplib_client(srv) as client:
        client.mail(SENDER)
        took, value = elapsed(client.rcpt, RCPT)
    assert value == (550, reply[4:].encode())
    assert 0.8 <= took < HANG_GUARD, took  # about 48 / 40 = 1.2 s
    took, _ = elapsed(check_nodemailer, srv, {"code": "EENVELOPE", "responseCode": 550, "response": reply})
    assert 1.0 <= took < HANG_GUARD, took
    wait_for_fault(srv, "rule 0", "rcpt", f"reply {reply} at 40 bytes/s", count=2)


def test_drip_normal_multiline_ehlo_reply(fault_server):
    srv = fault_server([rule("ehlo", {"drip": 200})])
    with smtplib.SMTP(srv.host, srv.port, timeout=20) as client:
        took, (code, _) = elapsed(client.ehlo, "drip.example")
        # Every capability of the slow reply was parsed.
        for ext in ("pipelining", "size", "starttls", "auth", "8bitmime", "smtputf8", "chunking", "help"):
            assert client.has_extn(ext), ext
        assert client.sendmail(SENDER, [RCPT], b"Subject: d\r\n\r\nd\r\n") == {}
    assert code == 250
    size = sum(len(line) + 2 for line in replies_sent(srv, 1)[1:13])  # the EHLO reply's lines
    assert 0.7 * size / 200 <= took < HANG_GUARD, (took, size)
    assert len(srv.wait_for_messages(1)) == 1
    assert fault_lines(srv)[0][3] == "normal reply at 200 bytes/s"


def test_drip_then_close(fault_server):
    reply = "554 5.3.0 Slowly going away"  # 29 bytes with CRLF: about 1.5 s at 20 bytes/s
    srv = fault_server([rule("data", {"reply": reply, "drip": 20, "close": True})])
    with srv.connect() as c:
        raw_envelope(c)
        c.send(b"DATA\r\n")
        took, data = elapsed(c.read_until_closed)
    assert data == reply.encode() + b"\r\n"
    assert 1.1 <= took < HANG_GUARD, took
    with smtplib_client(srv) as client:
        client.mail(SENDER)
        client.rcpt(RCPT)
        with pytest.raises(smtplib.SMTPDataError) as e:
            client.data(b"Subject: x\r\n\r\nx\r\n")
        assert (e.value.smtp_code, e.value.smtp_error) == (554, b"5.3.0 Slowly going away")
        with pytest.raises(smtplib.SMTPServerDisconnected):
            client.noop()
    wait_for_fault(srv, "rule 0", "data", f"reply {reply} at 20 bytes/s, then close the connection", count=2)
    expect_log_count(srv, "close fault: connection closed", 2)


# -- truncate and raw -----------------------------------------------------------------------------------------


def test_truncated_reply_cut_mid_line(fault_server):
    srv = fault_server([rule("mail", {"reply": "451 4.3.0 Temporary failure, try again later", "truncate": 12})])
    # Each client gets "451 4.3.0 Te" and then the end of the connection.
    out = check_clients(
        srv,
        nodemailer={"code": "ECONNECTION", "responseCode": 451, "command": "CONN", "response": "451 4.3.0 Te",
                    "message": "Connection closed unexpectedly: 451 4.3.0 Te"},
        phpmailer=(None, ["MAIL FROM command failed,Te,451,4.3.0"]),
        swaks=(6, []),
        smtplib=(smtplib.SMTPSenderRefused, 451, b"4.3.0 Te"))
    assert [r["lastReply"] for r in out["phpmailer"]] == ["451 4.3.0 Te"] * 2
    assert out["swaks"].stderr == "*** Remote host closed connection unexpectedly.\n"
    expect_log_count(srv, "close fault: reply truncated", 5)
    assert fault_lines(srv)[0][3] == ("reply 451 4.3.0 Temporary failure, try again later cut after 12 bytes, "
                                      "then close the connection")


def test_truncated_normal_data_end_reply_message_kept(fault_server):
    """The 250 is cut to "250 2.0.0 " and the connection closed: kept, yet did the client deliver?"""
    srv = fault_server([rule("data_end", {"truncate": 10})])
    out = check_clients(
        srv,
        nodemailer={"ok": False, "code": "ECONNECTION", "response": None,  # Nodemailer: a failure
                    "message": "Connection closed unexpectedly"},
        phpmailer=OK,  # PHPMailer: a success
        swaks=(6, []),  # swaks: a failure
        smtplib={})  # smtplib: a success
    assert [r["lastReply"] for r in out["phpmailer"]] == ["250 2.0.0 "] * 2
    # The server kept all five: only the reply was cut.
    assert len(srv.wait_for_messages(5)) == 5
    expect_log_count(srv, "close fault: reply truncated", 5)
    assert fault_lines(srv)[0][3] == "normal reply cut after 10 bytes, then close the connection"


def test_raw_reply_with_a_bad_code(fault_server):
    # The server goes silent after the raw bytes; its idle timeout (2 s) ends what the clients wait for.
    srv = fault_server([rule("data_end", {"raw": "99 bad code\r\n"})], "--idle-timeout", "2")
    timeout_421 = "421 4.4.2 localhost Error: timeout exceeded, closing connection"
    check_clients(srv, nodemailer={"code": "EMESSAGE", "responseCode": 99, "command": "DATA", "response": "99 bad code",
                                   "message": "Message failed: 99 bad code"},
                  smtplib=(smtplib.SMTPDataError, 99, b"ad code"))
    # PHPMailer and swaks read "99 b" as a continuation line and wait for the end of the reply: here
    # the server's 421 at its idle timeout.
    took, out = elapsed(check_clients, srv, phpmailer=("SMTP Error: data not accepted.",
                                                       ["DATA END command failed Detail: ad code", "SMTP code: 99"]),
                        swaks=(26, ["99 bad code", timeout_421]))
    assert [r["lastReply"] for r in out["phpmailer"]] == [f"99 bad code\r\n{timeout_421}"] * 2
    assert 5 < took < 40, took
    assert srv.message_ids() == []
    assert fault_lines(srv)[0][3] == "send 13 raw bytes"


def test_raw_reply_without_crlf(fault_server):
    """"250 no CRLF": no client can tell where the reply ends; they take what follows as part of it."""
    srv = fault_server([rule("data_end", {"raw": "250 no CRLF"})], "--idle-timeout", "2")
    with srv.connect() as c:
        raw_message(c, b"Subject: raw\r\n\r\nx\r\n")
        c.send(b"NOOP\r\n")
        assert c.read_until_closed() == (b"250 no CRLF250 2.0.0 Ok\r\n"
                                         b"421 4.4.2 localhost Error: timeout exceeded, closing connection\r\n")
    # Nodemailer takes the 421 that ends the line as part of it: "250 no CRLF421 ...", a success.
    took, _ = elapsed(check_nodemailer, srv, {
        "ok": True, "response": "250 no CRLF421 4.4.2 localhost Error: timeout exceeded, closing connection"})
    assert took > 1.5
    assert srv.message_ids() == []  # raw replaces the reply: the message was not kept


# -- close after a reply -------------------------------------------------------------------------------------------


def test_550_then_close(fault_server):
    srv = fault_server([rule("mail", {"reply": "550 5.7.1 Blocked by policy", "close": True})])
    check_clients(
        srv,
        # Nodemailer pipelines MAIL with RCPT and DATA: the close comes while their replies are due, and
        # it reports the lost connection, not the 550 (without PIPELINING it reports the 550).
        nodemailer={"code": "ECONNECTION", "responseCode": None, "command": "CONN",
                    "message": "Connection closed unexpectedly"},
        phpmailer=php_mail_from_failed("Blocked by policy", 550, "5.7.1"),
        swaks=(23, ["550 5.7.1 Blocked by policy"]),
        smtplib=(smtplib.SMTPSenderRefused, 550, b"5.7.1 Blocked by policy"))
    expect_log_count(srv, "close fault: connection closed", 5)
    assert fault_lines(srv)[0][3] == "reply 550 5.7.1 Blocked by policy, then close the connection"


def test_close_without_a_reply(fault_server):
    srv = fault_server([rule("rcpt", {"close": True})])
    check_clients(
        srv,
        nodemailer={"code": "ECONNECTION", "responseCode": None, "command": "CONN",
                    "message": "Connection closed unexpectedly"},
        phpmailer=(None, "SMTP Error: The following recipients failed: user@example.org: "),
        swaks=(6, []),
        smtplib=(smtplib.SMTPServerDisconnected,))
    assert fault_lines(srv)[0][3] == "close the connection"
    expect_log_count(srv, "close fault: connection closed", 5)
    assert srv.message_ids() == []
