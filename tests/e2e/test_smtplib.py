"""Python's smtplib (plain SMTP) against the real server: what smtplib reports, and what was captured."""

import hashlib
import smtplib
import threading

import pytest

from conftest import make_message, queued_id

HELO = "smtplib.test.example"


def send_data(client, sender, recipients, msg, mail_options=()):
    """MAIL, RCPT..., DATA through smtplib's own calls; returns the ID from the final 250 reply."""
    code, resp = client.mail(sender, list(mail_options))
    assert code == 250, f"MAIL FROM refused: {code} {resp!r}"
    for r in recipients:
        code, resp = client.rcpt(r)
        assert code == 250, f"RCPT TO:<{r}> refused: {code} {resp!r}"
    code, resp = client.data(msg)
    assert code == 250, f"message refused: {code} {resp!r}"
    return queued_id(resp)


def test_simple_message_envelope_and_bytes(server):
    msg = make_message("simple", "Hello from smtplib.\r\nSecond line.\r\n")
    with server.smtp(helo=HELO) as client:
        code, resp = client.ehlo(HELO)
        assert code == 250
        for ext in ("size", "pipelining", "8bitmime", "binarymime", "chunking", "smtputf8", "enhancedstatuscodes",
                    "dsn", "help"):
            assert client.has_extn(ext), f"EHLO does not advertise {ext}: {resp!r}"
        assert client.esmtp_features["size"] == str(35 * 1024 * 1024)
        msg_id = send_data(client, "sender@example.org", ["rcpt@example.org"], msg)
        local = "%s:%d" % client.sock.getsockname()[:2]

    (m,) = server.wait_for_messages(1)
    assert m.id == msg_id
    assert m.raw == msg
    assert m.sender == "sender@example.org"
    assert m.recipients == ["rcpt@example.org"]
    assert m["helo"] == HELO
    assert m["client"] == local
    assert m["listener"] == "smtp"
    assert m["size"] == len(msg)
    assert m["smtputf8"] is False
    assert "body" not in m.envelope
    assert "declared_size" not in m.envelope
    assert m["started"] <= m["received"]
    server.wait_for_log(rf"#{m['session']} message {msg_id}: {len(msg)} bytes, 1 recipient\b")


def test_sendmail_declares_size(server):
    """smtplib.sendmail adds SIZE=<len> when the server advertises SIZE; the envelope records it."""
    msg = make_message("declared size", "x" * 500)
    with server.smtp(helo=HELO) as client:
        assert client.sendmail("a@example.org", ["b@example.org"], msg) == {}
    (m,) = server.wait_for_messages(1)
    assert m["declared_size"] == len(msg)
    assert m.raw == msg


def test_8bit_body_byte_for_byte(server):
    # Every byte value but CR and LF, in lines well under the 1000-octet limit.
    every = bytes(b for b in range(256) if b not in (0x0A, 0x0D))
    body = b"".join(every[i:i + 60] + b"\r\n" for i in range(0, len(every), 60))
    body += "Grüße, ça va? Ωμέγα 日本語 \U0001F600\r\n".encode("utf-8")
    msg = make_message("eight bit", body, extra_headers=["MIME-Version: 1.0",
                                                       "Content-Type: text/plain; charset=iso-8859-1",
                                                       "Content-Transfer-Encoding: 8bit"])
    with server.smtp(helo=HELO) as client:
        refused = client.sendmail("a@example.org", ["b@example.org"], msg, mail_options=["BODY=8BITMIME"])
        assert refused == {}
    (m,) = server.wait_for_messages(1)
    assert m.raw == msg
    assert m["body"] == "8BITMIME"
    assert m["smtputf8"] is False


def test_utf8_addresses_with_smtputf8(server):
    sender = "jörg@exämple.org"
    recipients = ["用户@例子.广告", "ελληνικά@παράδειγμα.δοκιμή", "ascii@example.org"]
    body = "Subject: ünïcödé\r\nFrom: <jörg@exämple.org>\r\n\r\nПривет, мир! 你好\r\n".encode("utf-8")
    with server.smtp(helo=HELO) as client:
        refused = client.sendmail(sender, recipients, body, mail_options=["SMTPUTF8", "BODY=8BITMIME"])
        assert refused == {}
    (m,) = server.wait_for_messages(1)
    assert m.sender == sender
    assert m.recipients == recipients
    assert m["smtputf8"] is True
    assert m["body"] == "8BITMIME"
    assert m.raw == body


def test_utf8_address_without_smtputf8_is_refused(server):
    with server.smtp(helo=HELO) as client:
        # smtplib refuses to encode non-ASCII without SMTPUTF8, so the command goes out as bytes.
        client.send("MAIL FROM:<jörg@exämple.org>\r\n".encode("utf-8"))
        code, resp = client.getreply()
        assert (code, resp) == (553, b"5.6.7 Error: non-ASCII sender address needs the SMTPUTF8 parameter")
        code, _ = client.mail("ascii@example.org")
        assert code == 250
        client.send("RCPT TO:<用户@例子.广告>\r\n".encode("utf-8"))
        code, resp = client.getreply()
        assert code == 553 and resp.startswith(b"5.6.7 "), (code, resp)
        client.send(b"RCPT TO:<bad\xff\xfe@example.org>\r\n")
        code, resp = client.getreply()
        assert code in (501, 553), (code, resp)
    assert server.message_ids() == []


def test_dot_lines_round_trip(server):
    lines = [b".", b"..", b"...", b".leading dot", b"..two dots", b"middle . dot", b" .space dot",
             b".\t", b"", b".", b"last line starts with a dot: ."]
    body = b"\r\n".join(lines) + b"\r\n.end"
    msg = make_message("dots", body)
    with server.smtp(helo=HELO) as client:
        msg_id = send_data(client, "a@example.org", ["b@example.org"], msg)
    (m,) = server.wait_for_messages(1)
    assert m.id == msg_id
    assert m.raw == msg, "dot-unstuffing did not restore the original bytes"


def test_ten_megabyte_message(server):
    line = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.,;:!?-+=()\r\n"  # 76 octets
    body = line * (10 * 1024 * 1024 // len(line) + 1)
    msg = make_message("ten megabytes", body)
    assert len(msg) > 10 * 1024 * 1024
    with server.smtp(timeout=120, helo=HELO) as client:
        assert client.sendmail("big@example.org", ["b@example.org"], msg) == {}
    (m,) = server.wait_for_messages(1, timeout=30)
    assert m["size"] == len(msg)
    assert hashlib.sha256(m.raw).hexdigest() == hashlib.sha256(msg).hexdigest()


def test_hundred_recipients_and_452_past_the_limit(server_factory):
    srv = server_factory("--max-recipients", "100")
    hundred = [f"rcpt{i:03d}@example.org" for i in range(100)]
    msg = make_message("hundred", "to a hundred recipients")
    with srv.smtp(helo=HELO) as client:
        assert client.sendmail("a@example.org", hundred, msg) == {}
        # One more than the limit: smtplib reports the refused recipient and delivers to the rest.
        refused = client.sendmail("a@example.org", hundred + ["one.too.many@example.org"], msg)
        assert refused == {"one.too.many@example.org": (452, b"4.5.3 Error: too many recipients")}
    first, second = srv.wait_for_messages(2)
    assert first.recipients == hundred
    assert second.recipients == hundred
    assert first.raw == second.raw == msg


def test_null_sender(server):
    msg = make_message("bounce", "a delivery status notification", sender="mailer-daemon@example.org")
    with server.smtp(helo=HELO) as client:
        code, resp = client.mail("<>")
        assert (code, resp) == (250, b"2.1.0 Sender <> OK")
        assert client.docmd("RCPT TO:postmaster")[0] == 501  # no angle brackets: syntax error
        assert client.rcpt("<Postmaster>")[0] == 250  # RFC 5321 4.1.1.3: domain-less postmaster
        assert client.rcpt("rcpt@example.org")[0] == 250
        code, resp = client.data(msg)
        assert code == 250
        msg_id = queued_id(resp)
    (m,) = server.wait_for_messages(1)
    assert m.id == msg_id
    assert m.sender == ""
    assert m.recipients == ["Postmaster", "rcpt@example.org"]


def test_many_messages_on_one_connection(server):
    n = 50
    ids = []
    with server.smtp(helo=HELO) as client:
        for i in range(n):
            msg = make_message(f"message {i}", f"body number {i}\r\n")
            ids.append(send_data(client, f"s{i}@example.org", [f"r{i}@example.org"], msg))
            if i % 10 == 9:
                assert client.rset()[0] == 250
                assert client.noop()[0] == 250
    assert len(set(ids)) == n, "IDs are not unique"
    assert ids == sorted(ids), "IDs do not grow"
    messages = server.wait_for_messages(n)
    assert [m.id for m in messages] == ids
    assert len({m["session"] for m in messages}) == 1, "not all on one session"
    for i, m in enumerate(messages):
        assert m.sender == f"s{i}@example.org"
        assert m.recipients == [f"r{i}@example.org"]
        assert f"body number {i}\r\n".encode() in m.raw


def test_size_declared_too_big_is_refused_at_mail(server_factory):
    srv = server_factory("--max-message-size", "2048")
    big = make_message("too big", "y" * 4000)
    with srv.smtp(helo=HELO) as client:
        assert client.esmtp_features["size"] == "2048"
        with pytest.raises(smtplib.SMTPSenderRefused) as exc:
            client.sendmail("a@example.org", ["b@example.org"], big)  # sendmail declares SIZE=len(big)
        assert exc.value.smtp_code == 552
        assert exc.value.smtp_error == b"5.3.4 Error: message size exceeds fixed maximum message size (2048 octets)"
        # The session goes on: a message under the limit is accepted.
        assert client.sendmail("a@example.org", ["b@example.org"], make_message("small", "ok")) == {}
    (m,) = srv.wait_for_messages(1)
    assert b"Subject: small" in m.raw


def test_size_exceeded_in_data_is_refused_at_end(server_factory):
    srv = server_factory("--max-message-size", "2048")
    big = make_message("too big", "z" * 4000)
    small = make_message("small after big", "fits")
    with srv.smtp(helo=HELO) as client:
        # A client that ignores SIZE: no SIZE= on MAIL, the whole body sent.
        del client.esmtp_features["size"]
        with pytest.raises(smtplib.SMTPDataError) as exc:
            client.sendmail("a@example.org", ["b@example.org"], big)
        assert exc.value.smtp_code == 552
        assert exc.value.smtp_error.startswith(b"5.3.4 Error: message size exceeds fixed maximum message size")
        assert client.sendmail("a@example.org", ["b@example.org"], small) == {}
    (m,) = srv.wait_for_messages(1)
    assert m.raw == small


def test_bdat_through_smtplib(server):
    chunk1 = b"Subject: chunked\r\n\r\nfirst chunk\r\n.\r\n"  # a lone dot line: no meaning in BDAT
    chunk2 = b"second\x00chunk with NUL, bare\nLF and bare\rCR\r\n"
    with server.smtp(helo=HELO) as client:
        assert client.has_extn("chunking")
        assert client.docmd("MAIL FROM:<a@example.org> BODY=BINARYMIME")[0] == 250
        assert client.docmd("RCPT TO:<b@example.org>")[0] == 250
        client.send(b"BDAT %d\r\n" % len(chunk1) + chunk1)
        assert client.getreply() == (250, b"2.0.0 %d octets received" % len(chunk1))
        client.send(b"BDAT %d LAST\r\n" % len(chunk2) + chunk2)
        code, resp = client.getreply()
        assert code == 250, resp
        msg_id = queued_id(resp)
        # BINARYMIME needs BDAT: DATA is refused.
        assert client.docmd("MAIL FROM:<a@example.org> BODY=BINARYMIME")[0] == 250
        assert client.docmd("RCPT TO:<b@example.org>")[0] == 250
        assert client.docmd("DATA") == (503, b"5.5.1 Error: BODY=BINARYMIME needs BDAT, not DATA")
    (m,) = server.wait_for_messages(1)
    assert m.id == msg_id
    assert m.raw == chunk1 + chunk2
    assert m["body"] == "BINARYMIME"


def test_concurrent_sessions(server):
    threads_n, per_thread = 20, 5
    errors = []
    ids = {}
    start = threading.Barrier(threads_n, timeout=30)

    def worker(t):
        try:
            start.wait()
            with server.smtp(timeout=60, helo=f"thread{t}.example") as client:
                for i in range(per_thread):
                    msg = make_message(f"t{t} m{i}", f"thread {t} message {i}\r\n")
                    ids[(t, i)] = send_data(client, f"t{t}@example.org", [f"m{i}@example.org"], msg)
        except Exception as e:  # reported below, with the thread
            errors.append(f"thread {t}: {e!r}")

    workers = [threading.Thread(target=worker, args=(t,), daemon=True) for t in range(threads_n)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=90)
    assert not any(w.is_alive() for w in workers), "a client thread is stuck"
    assert not errors, errors
    assert len(set(ids.values())) == threads_n * per_thread
    messages = {m.id: m for m in server.wait_for_messages(threads_n * per_thread)}
    assert set(messages) == set(ids.values())
    sessions = set()
    for (t, i), msg_id in ids.items():
        m = messages[msg_id]
        assert m.sender == f"t{t}@example.org"
        assert m.recipients == [f"m{i}@example.org"]
        assert m["helo"] == f"thread{t}.example"
        assert f"thread {t} message {i}\r\n".encode() in m.raw
        sessions.add(m["session"])
    assert len(sessions) == threads_n
