"""nodemailer (tests/clients, pinned by package-lock.json) against the real server."""

import base64
import email
import email.policy
import hashlib
import os
import re

from harness.clients import nodemailer_payload as payload, run_nodemailer
from harness.smtp import queued_id


def client_lines(log, tnx):
    return [e["text"] for e in log if e["tnx"] == tnx]


def parse(raw):
    return email.message_from_bytes(raw, policy=email.policy.default)


def content(part):
    """A text part's decoded content with the wire's CRLF line ends turned back into LF."""
    return part.get_content().replace("\r\n", "\n")


def test_plain_message(server):
    result = run_nodemailer(payload(server, {
        "from": "Node Sender <node@example.org>",
        "to": "Rcpt <rcpt@example.org>",
        "subject": "hello from nodemailer",
        "text": "Plain text body.\n.leading dot line\n",
    }))
    assert result["ok"] is True, result
    msg_id = queued_id(result["response"])
    assert result["response"] == f"250 2.0.0 Ok: queued as {msg_id}"
    assert result["accepted"] == ["rcpt@example.org"] and result["rejected"] == []

    (m,) = server.wait_for_messages(1)
    assert m.id == msg_id
    assert m.sender == "node@example.org"
    assert m.recipients == ["rcpt@example.org"]
    parsed = parse(m.raw)
    assert parsed["Message-ID"] == result["messageId"]
    assert parsed["Subject"] == "hello from nodemailer"
    assert content(parsed) == "Plain text body.\n.leading dot line\n"


def test_utf8_body_and_attachments_round_trip(server):
    binary = os.urandom(100_000) + bytes(range(256))
    text = "Grüße aus Köln — Ωμέγα, 日本語, emoji \U0001F680\n" * 20
    result = run_nodemailer(payload(server, {
        "from": "sender@example.org",
        "to": ["a@example.org", "b@example.org"],
        "subject": "Ünïcödé subject ✓",
        "text": text,
        "html": "<p>Grüße <b>✓</b></p>",
        "attachments": [
            {"filename": "random.bin", "contentBase64": base64.b64encode(binary).decode()},
            {"filename": "notes-ä.txt", "content": "plain attachment\nwith two lines\n"},
        ],
    }))
    assert result["ok"] is True, result
    (m,) = server.wait_for_messages(1)
    assert m.id == queued_id(result["response"])
    assert m.recipients == ["a@example.org", "b@example.org"]
    parsed = parse(m.raw)
    assert parsed["Subject"] == "Ünïcödé subject ✓"
    assert content(parsed.get_body(("plain",))) == text
    assert "Grüße <b>✓</b>" in content(parsed.get_body(("html",)))
    attachments = {a.get_filename(): a.get_content() for a in parsed.iter_attachments()}
    assert hashlib.sha256(attachments["random.bin"]).digest() == hashlib.sha256(binary).digest()
    assert attachments["notes-ä.txt"].replace("\r\n", "\n") == "plain attachment\nwith two lines\n"


def test_utf8_addresses_use_smtputf8(server):
    result = run_nodemailer(payload(server, {
        "from": "jörg@exämple.org",
        "to": "用户@例子.广告",
        "subject": "smtputf8",
        "text": "hi",
    }))
    assert result["ok"] is True, result
    commands = client_lines(result["log"], "client")
    mail = [c for c in commands if c.startswith("MAIL FROM:")]
    assert mail == ["MAIL FROM:<jörg@exämple.org> SMTPUTF8"], mail
    (m,) = server.wait_for_messages(1)
    assert m.id == queued_id(result["response"])
    assert m["smtputf8"] is True
    assert m.sender == "jörg@exämple.org"
    assert m.recipients == ["用户@例子.广告"]
    assert "To: 用户@例子.广告\r\n".encode("utf-8") in m.raw


def test_raw_8bit_message_byte_for_byte(server):
    raw = ("From: <a@example.org>\r\nTo: <b@example.org>\r\nSubject: raw\r\nMIME-Version: 1.0\r\n"
           "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
           "Ünïcödé body\r\n..two dots\r\n.\r\nend\r\n").encode("utf-8")
    result = run_nodemailer(payload(server, {
        "envelope": {"from": "a@example.org", "to": ["b@example.org"]},
        "rawBase64": base64.b64encode(raw).decode(),
    }))
    assert result["ok"] is True, result
    (m,) = server.wait_for_messages(1)
    assert m.raw == raw


def test_pipelining(server):
    result = run_nodemailer(payload(server, {
        "from": "pipe@example.org",
        "to": ["one@example.org", "two@example.org", "three@example.org"],
        "subject": "pipelined",
        "text": "body",
    }))
    assert result["ok"] is True, result
    # nodemailer's own transcript: MAIL, the RCPTs and DATA all go out before the first server reply.
    sequence = [(e["tnx"], e["text"]) for e in result["log"] if e["tnx"] in ("client", "server")]
    mail_at = next(i for i, (t, s) in enumerate(sequence) if t == "client" and s.startswith("MAIL FROM:"))
    after = sequence[mail_at:]
    assert [s for t, s in after[:5]] == ["MAIL FROM:<pipe@example.org>", "RCPT TO:<one@example.org>",
                                          "RCPT TO:<two@example.org>", "RCPT TO:<three@example.org>", "DATA"], after
    replies = [s for t, s in after if t == "server"]
    assert replies[:5] == ["250 2.1.0 Sender <pipe@example.org> OK",
                           "250 2.1.5 Recipient <one@example.org> OK",
                           "250 2.1.5 Recipient <two@example.org> OK",
                           "250 2.1.5 Recipient <three@example.org> OK",
                           "354 End data with <CR><LF>.<CR><LF>"], replies
    (m,) = server.wait_for_messages(1)
    assert m.recipients == ["one@example.org", "two@example.org", "three@example.org"]


def test_pooled_connection_many_messages(server):
    n = 30
    messages = [{"from": f"s{i}@example.org", "to": f"r{i}@example.org", "subject": f"pooled {i}",
                 "text": f"pooled message {i}"} for i in range(n)]
    result = run_nodemailer(payload(server, messages=messages, pool=True, maxConnections=1, maxMessages=1000))
    results = result["results"]
    assert all(r["ok"] for r in results), [r for r in results if not r["ok"]]
    ids = [queued_id(r["response"]) for r in results]
    assert len(set(ids)) == n
    stored = {m.id: m for m in server.wait_for_messages(n)}
    assert set(stored) == set(ids)
    for i, msg_id in enumerate(ids):
        m = stored[msg_id]
        assert m.sender == f"s{i}@example.org" and m.recipients == [f"r{i}@example.org"]
        assert f"pooled message {i}".encode() in m.raw
    # One connection carried them all.
    assert len({m["session"] for m in stored.values()}) == 1
    assert len(re.findall(r"#\d+ connect ", server.log())) == 1


def test_message_too_big(server_factory):
    srv = server_factory("--max-message-size", "2048")
    result = run_nodemailer(payload(srv, {
        "from": "big@example.org", "to": "b@example.org", "subject": "too big", "text": "x" * 5000,
    }))
    assert result["ok"] is False, result
    assert result["code"] == "EMESSAGE"
    assert result["responseCode"] == 552
    assert result["command"] == "DATA"
    assert result["response"] == "552 5.3.4 Error: message size exceeds fixed maximum message size (2048 octets)"
    assert srv.message_ids() == []


def test_too_many_recipients_partial_delivery(server_factory):
    srv = server_factory("--max-recipients", "100")
    recipients = [f"r{i}@example.org" for i in range(101)]
    result = run_nodemailer(payload(srv, {
        "envelope": {"from": "a@example.org", "to": recipients},
        "from": "a@example.org", "to": "list@example.org", "subject": "many", "text": "many",
    }))
    # nodemailer delivers to the accepted recipients and lists the refused one.
    assert result["ok"] is True, result
    assert result["accepted"] == recipients[:100]
    assert result["rejected"] == ["r100@example.org"]
    (m,) = srv.wait_for_messages(1)
    assert m.id == queued_id(result["response"])
    assert m.recipients == recipients[:100]


def test_all_recipients_refused(server):
    result = run_nodemailer(payload(server, {
        "envelope": {"from": "a@example.org", "to": ["bad@"]},
        "from": "a@example.org", "to": "x@example.org", "subject": "refused", "text": "x",
    }))
    assert result["ok"] is False, result
    assert result["code"] == "EENVELOPE"
    assert result["responseCode"] == 501
    assert result["response"].startswith("501 5.1.3 Bad recipient address")
    assert server.message_ids() == []
