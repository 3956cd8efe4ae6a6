"""PHPMailer (Debian's libphp-phpmailer) against the real server, with exceptions on and off."""

import base64
import email
import email.policy
import os

import pytest

from conftest import queued_id, run_phpmailer


def payload(server, messages, exceptions, keep_alive=False):
    return {"host": server.host, "port": server.port, "exceptions": exceptions, "keepAlive": keep_alive,
            "messages": messages}


@pytest.mark.parametrize("exceptions", [True, False], ids=["exceptions", "no-exceptions"])
def test_send_utf8_with_attachment(server, exceptions):
    data = os.urandom(50_000)
    body = "Grüße aus Wien — ünïcödé ✓\n.leading dot\nend\n"
    result = run_phpmailer(payload(server, [{
        "from": "php@example.org",
        "to": ["one@example.org", "two@example.org"],
        "cc": ["cc@example.org"],
        "bcc": ["hidden@example.org"],
        "subject": "PHPMailer e2e ✓",
        "body": body,
        "encoding": "8bit",
        "attachments": [{"name": "data.bin", "contentBase64": base64.b64encode(data).decode(),
                         "type": "application/octet-stream"}],
    }], exceptions))
    (r,) = result["results"]
    assert r["ok"] is True and r["returned"] is True, r
    assert r["exception"] is None and r["errorInfo"] == ""
    # PHPMailer's own transcript has the final reply; it also parses the ID out of it.
    (queued,) = [line for line in result["debug"] if line.startswith("SERVER -> CLIENT: 250 2.0.0 Ok: queued as ")]
    msg_id = queued_id(queued)
    assert r["transactionId"] == msg_id

    (m,) = server.wait_for_messages(1)
    assert m.id == msg_id
    assert m.sender == "php@example.org"
    assert m.recipients == ["one@example.org", "two@example.org", "cc@example.org", "hidden@example.org"]
    parsed = email.message_from_bytes(m.raw, policy=email.policy.default)
    assert parsed["Message-ID"] == r["messageId"]
    assert parsed["Subject"] == "PHPMailer e2e ✓"
    assert "hidden@example.org" not in m.raw.decode("utf-8", "replace"), "Bcc leaked into the message"
    text = parsed.get_body(("plain",)).get_content().replace("\r\n", "\n")
    assert text == body
    (att,) = list(parsed.iter_attachments())
    assert att.get_filename() == "data.bin" and att.get_content() == data


def test_keepalive_many_messages_one_connection(server):
    n = 10
    messages = [{"from": f"s{i}@example.org", "to": [f"r{i}@example.org"], "subject": f"keepalive {i}",
                 "body": f"message number {i}\n"} for i in range(n)]
    result = run_phpmailer(payload(server, messages, True, keep_alive=True))
    assert all(r["ok"] for r in result["results"]), result["results"]
    ids = [r["transactionId"] for r in result["results"]]
    stored = server.wait_for_messages(n)
    assert [m.id for m in stored] == ids
    assert len({m["session"] for m in stored}) == 1
    for i, m in enumerate(stored):
        assert m.sender == f"s{i}@example.org" and f"message number {i}".encode() in m.raw
    # PHPMailer resets between messages on a kept-alive connection.
    assert result["debug"].count("CLIENT -> SERVER: RSET") == n


@pytest.mark.parametrize("exceptions", [True, False], ids=["exceptions", "no-exceptions"])
def test_message_too_big(server_factory, exceptions):
    srv = server_factory("--max-message-size", "2048")
    result = run_phpmailer(payload(srv, [{
        "from": "php@example.org", "to": ["b@example.org"], "subject": "too big", "body": "x" * 5000,
    }], exceptions))
    (r,) = result["results"]
    assert r["ok"] is False
    if exceptions:
        assert r["returned"] is None, "send() returned instead of throwing"
        assert r["exception"]["class"] == "PHPMailer\\PHPMailer\\Exception"
        assert r["exception"]["message"] == "SMTP Error: data not accepted."
    else:
        assert r["returned"] is False and r["exception"] is None
    assert r["errorInfo"].startswith("SMTP Error: data not accepted.")
    assert "SMTP code: 552" in r["errorInfo"]
    assert "Additional SMTP info: 5.3.4" in r["errorInfo"]
    assert "message size exceeds fixed maximum message size (2048 octets)" in r["errorInfo"]
    assert r["lastReply"] == "552 5.3.4 Error: message size exceeds fixed maximum message size (2048 octets)"
    assert srv.message_ids() == []


@pytest.mark.parametrize("exceptions", [True, False], ids=["exceptions", "no-exceptions"])
def test_too_many_recipients(server_factory, exceptions):
    srv = server_factory("--max-recipients", "100")
    recipients = [f"r{i}@example.org" for i in range(101)]
    result = run_phpmailer(payload(srv, [{
        "from": "php@example.org", "to": ["list@example.org"], "bcc": recipients[1:], "subject": "many",
        "body": "many",
    }], exceptions))
    (r,) = result["results"]
    # PHPMailer sends to the accepted recipients, then reports the refused one as a failure.
    assert r["ok"] is False
    expected = "SMTP Error: The following recipients failed: r100@example.org: Error: too many recipients"
    assert r["errorInfo"].rstrip() == expected
    if exceptions:
        assert r["exception"]["message"].rstrip() == expected
    else:
        assert r["returned"] is False and r["exception"] is None
    (m,) = srv.wait_for_messages(1)
    assert m.id == r["transactionId"]
    assert m.recipients == ["list@example.org"] + recipients[1:100]

