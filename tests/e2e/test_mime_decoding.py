"""Mailpit's message API (docs/http.md) shows what real clients encode as the text they were given: RFC 2047
encoded words in the subject and the display names (Nodemailer encodes every non-ASCII one), RFC 2231 file
names (filename*0*=utf-8''...), and text and HTML parts in a charset other than UTF-8 (PHPMailer with CharSet
iso-8859-1) converted to UTF-8. smtpfault's own "subject" glob (messages.list) matches the decoded subject too."""

import urllib.parse

from harness.clients import nodemailer_payload, run_nodemailer
from harness.http import http_json
from conftest import queued_id, run_phpmailer

SUBJECT = "Grüße aus Köln ✓"
FROM_NAME = "Jörg Müller"
LONG_NAME = "Überweisungsbestätigung für März 2026 – Rechnung Nr. 12345 (Kopie für die Buchhaltung).txt"


def latest(srv):
    status, m = http_json(srv, "GET", "/api/v1/message/latest")
    assert status == 200, m
    return m


def search(srv, query):
    status, out = http_json(srv, "GET", "/api/v1/search?query=" + urllib.parse.quote(query))
    assert status == 200, out
    return out["messages"]


def test_nodemailer_encoded_subject_and_names(server):
    result = run_nodemailer(nodemailer_payload(server, {
        "from": {"name": FROM_NAME, "address": "joerg@example.org"},
        "to": [{"name": "Ådne Ørsted", "address": "adne@example.org"}],
        "cc": [{"name": "Zoë", "address": "zoe@example.org"}],
        "replyTo": {"name": "Çağla", "address": "cagla@example.org"},
        "subject": SUBJECT,
        "text": "Hallo Köln.\n",
        "attachments": [{"filename": "naïve résumé.txt", "content": "x\n"},
                        {"filename": LONG_NAME, "content": "y\n"}],
    }))
    assert result["ok"] is True, result
    msg_id = queued_id(result["response"])
    (m,) = server.wait_for_messages(1)
    assert b"=?UTF-8?" in m.raw.split(b"\r\n\r\n")[0], "Nodemailer sent no encoded word: nothing is tested"
    assert b"filename*1*=" in m.raw, "Nodemailer sent no RFC 2231 continuation: nothing is tested"

    got = latest(server)
    assert got["ID"] == msg_id
    assert got["Subject"] == SUBJECT
    assert got["From"] == {"Name": FROM_NAME, "Address": "joerg@example.org"}
    assert got["To"] == [{"Name": "Ådne Ørsted", "Address": "adne@example.org"}]
    assert got["Cc"] == [{"Name": "Zoë", "Address": "zoe@example.org"}]
    assert got["ReplyTo"] == [{"Name": "Çağla", "Address": "cagla@example.org"}]
    assert got["Text"] == "Hallo Köln.\r\n"  # line ends as received
    assert [a["FileName"] for a in got["Attachments"]] == ["naïve résumé.txt", LONG_NAME]

    for query in ("subject:Grüße", f'subject:"{SUBJECT}"', "Köln", "from:Jörg", "to:Ørsted"):
        (hit,) = search(server, query)
        assert hit["ID"] == msg_id and hit["Subject"] == SUBJECT, query
        assert hit["From"]["Name"] == FROM_NAME
    assert search(server, "subject:UTF-8") == []  # the encoded form is not what is searched

    with server.admin() as admin:
        assert [x["id"] for x in admin.ok("messages.list", subject="Grüße*")["messages"]] == [msg_id]
        assert admin.ok("messages.list", subject="=?UTF-8?*")["messages"] == []


def test_phpmailer_iso_8859_1(server):
    body = "<p>Grüße aus Köln, 25 °C, ½ Liter</p>"
    alt = "Grüße aus Köln, 25 °C, ½ Liter\n"
    result = run_phpmailer({"host": server.host, "port": server.port, "exceptions": True, "messages": [{
        "from": "php@example.org", "fromName": "Søren Ærø", "to": ["rcpt@example.org"],
        "subject": "Grüße aus Köln", "charset": "iso-8859-1", "isHTML": True, "body": body, "altBody": alt,
    }]})
    (r,) = result["results"]
    assert r["ok"] is True, r
    (m,) = server.wait_for_messages(1)
    assert b"charset=iso-8859-1" in m.raw and "Köln".encode("latin-1") in m.raw, "not sent in ISO-8859-1"

    got = latest(server)
    assert got["Subject"] == "Grüße aus Köln"
    assert got["From"] == {"Name": "Søren Ærø", "Address": "php@example.org"}
    assert got["Text"].replace("\r\n", "\n") == alt
    assert body in got["HTML"]
    (hit,) = search(server, "Liter")
    assert hit["Snippet"] == alt.strip()
    assert hit["Subject"] == "Grüße aus Köln"
    assert [x["ID"] for x in search(server, "from:Søren")] == [got["ID"]]
