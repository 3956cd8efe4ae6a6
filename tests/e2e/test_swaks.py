"""swaks (Debian's /usr/bin/swaks) against the real server: its exit code, its transcript, the capture."""

import re

from harness.clients import run_swaks, swaks_replies


def test_swaks_sends_a_message(server):
    body = "Hello from swaks.\nSecond line.\n.leading dot\n"
    proc = run_swaks(server, "--from", "swaks@example.org", "--to", "one@example.org,two@example.org",
                     "--helo", "swaks.test.example", "--header", "Subject: swaks e2e", "--body", body)
    assert proc.returncode == 0, f"swaks exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    replies = swaks_replies(proc.stdout)
    assert replies[0] == "220 localhost ESMTP smtpfault"
    assert "250-PIPELINING" in replies and "250 HELP" in replies
    assert "250 2.1.0 Sender <swaks@example.org> OK" in replies
    assert "250 2.1.5 Recipient <one@example.org> OK" in replies
    assert "250 2.1.5 Recipient <two@example.org> OK" in replies
    assert "354 End data with <CR><LF>.<CR><LF>" in replies
    queued = [r for r in replies if r.startswith("250 2.0.0 Ok: queued as ")]
    assert len(queued) == 1, replies
    msg_id = queued[0].rsplit(" ", 1)[1]
    assert replies[-1] == "221 2.0.0 localhost Bye"
    assert "<**" not in proc.stdout, "swaks saw an error reply"

    (m,) = server.wait_for_messages(1)
    assert m.id == msg_id
    assert m.sender == "swaks@example.org"
    assert m.recipients == ["one@example.org", "two@example.org"]
    assert m["helo"] == "swaks.test.example"
    assert b"Subject: swaks e2e\r\n" in m.raw
    # swaks turns LF into CRLF and dot-stuffs; the server un-stuffs.
    assert b"\r\n\r\nHello from swaks.\r\nSecond line.\r\n.leading dot\r\n" in m.raw


def test_swaks_pipelining(server):
    proc = run_swaks(server, "--pipeline", "--from", "p@example.org", "--to", "q@example.org,r@example.org")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # swaks --pipeline writes MAIL, RCPT, RCPT and DATA back to back, then reads the four replies.
    assert re.search(r"-> MAIL FROM:<p@example.org>\n -> RCPT TO:<q@example.org>\n -> RCPT TO:<r@example.org>\n"
                     r" -> DATA\n<-  250 2.1.0 Sender <p@example.org> OK\n<-  250 2.1.5 Recipient <q@example.org> OK\n"
                     r"<-  250 2.1.5 Recipient <r@example.org> OK\n<-  354 ", proc.stdout), proc.stdout
    (m,) = server.wait_for_messages(1)
    assert m.recipients == ["q@example.org", "r@example.org"]


def test_swaks_too_many_recipients(server_factory):
    srv = server_factory("--max-recipients", "100")
    recipients = [f"r{i}@example.org" for i in range(101)]
    proc = run_swaks(srv, "--from", "a@example.org", "--to", ",".join(recipients),
                     "--header", "To: list@example.org")
    # Some recipients were accepted, so swaks goes on and the message is delivered to them: exit 0.
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "<** 452 4.5.3 Error: too many recipients" in proc.stdout
    assert proc.stdout.count("<** ") == 1
    (m,) = srv.wait_for_messages(1)
    assert m.recipients == recipients[:100]


def test_swaks_message_too_big(server_factory):
    srv = server_factory("--max-message-size", "1024")
    proc = run_swaks(srv, "--from", "a@example.org", "--to", "b@example.org", "--body", "x" * 3000)
    # swaks exit code 26: the server did not accept the mail after the data.
    assert proc.returncode == 26, f"swaks exited {proc.returncode}:\n{proc.stdout}"
    assert ("<** 552 5.3.4 Error: message size exceeds fixed maximum message size (1024 octets)"
            in proc.stdout), proc.stdout
    assert srv.message_ids() == []


def test_swaks_recipient_refused(server):
    # A non-ASCII recipient without SMTPUTF8: the only recipient is refused, swaks exits 24.
    proc = run_swaks(server, "--from", "a@example.org", "--to", "üser@example.org")
    assert proc.returncode == 24, f"swaks exited {proc.returncode}:\n{proc.stdout}"
    assert "<** 553 5.6.7 Error: non-ASCII recipient address needs SMTPUTF8 in MAIL FROM" in proc.stdout
    assert server.message_ids() == []


def test_swaks_sender_refused(server):
    proc = run_swaks(server, "--from", "not an address", "--to", "b@example.org")
    assert proc.returncode == 23, f"swaks exited {proc.returncode}:\n{proc.stdout}"
    assert "<** 501 5.1.7 Bad sender address: syntax error" in proc.stdout
    assert server.message_ids() == []

