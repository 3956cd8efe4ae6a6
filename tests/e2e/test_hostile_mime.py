"""Red team on the MIME reading behind Mailpit's API (docs/http.md), BDAT's 8-bit scan, the event streams'
hand-written JSON lines: what an unauthenticated SMTP peer sends is shown as valid output, and costs no more
than docs/limits.md says."""

import datetime
import json
import os
import random
import time

from harness.env import HANG_GUARD, poll
from harness.http import RawHttp, http_json, request_bytes
from harness.profiles import reply_rule, start_with_profile
from harness.smtp import RawClient
from test_findings import run_session, session_findings, starttls
from test_http import send
from test_scopes import create, smtplib_send, subjects


def message(srv, msg_id):
    status, m = http_json(srv, "GET", f"/api/v1/message/{msg_id}")
    assert status == 200, m
    return m


def test_date_is_always_rfc3339(server):
    """A Date field strptime reads but RFC 3339 cannot say (second 61, an offset of 24 hours or more) is no
    date: Date is then the time the message was received, never a time a client cannot parse."""
    for field in ("Thu, 1 Jan 2026 10:00:61 +0000", "1 Jan 2026 10:00:00 +9959", "1 Jan 2026 10:00:00 -2400"):
        msg_id = send(server, raw=f"From: a@example.org\r\nDate: {field}\r\nSubject: d\r\n\r\nHi.\r\n".encode())
        m = message(server, msg_id)
        _, summary = http_json(server, "GET", f"/api/v1/messages/{msg_id}")
        assert m["Date"] == summary["message"]["received"], (field, m["Date"])
        datetime.datetime.fromisoformat(m["Date"].replace("Z", "+00:00"))



def test_date_years_as_rfc5322_reads_them(server):
    """RFC 5322 4.3: a three-digit year is 1900 more, a two-digit one 1900 or 2000 more; four digits are the
    year itself, "0070" too; one digit is no year (Date is then the received time)."""
    for year, want in (("0070", "0070"), ("126", "2026"), ("99", "1999"), ("7", None)):
        msg_id = send(server, raw=f"From: a@example.org\r\nDate: 1 Jan {year} 10:00 +0000\r\n\r\nHi.\r\n".encode())
        _, summary = http_json(server, "GET", f"/api/v1/messages/{msg_id}")
        got = message(server, msg_id)["Date"]
        assert got == (f"{want}-01-01T10:00:00Z" if want else summary["message"]["received"]), (year, got)

# Command lines an SMTP peer may send, each byte class the hand-written event lines (event_line.c) must escape:
# C0 and C1 controls, DEL, quotes and backslashes, U+2028/U+2029, invalid UTF-8 (a lone continuation byte, an
# overlong, a surrogate, past U+10FFFF, a sequence cut by the 200-byte cut-off), NUL.
HOSTILE_LINES = [
    b'NOOP "q" \\ \\\\" \x01\x1b[31m\x7f',
    b"NOOP \xc2\x85\xc2\x9b \xe2\x80\xa8\xe2\x80\xa9 \xc3\xa9",
    b"NOOP \x80 \xc0\xaf \xed\xa0\x80 \xf4\x90\x80\x80 \xff\xfe",
    b"NOOP \x00 nul",
    b"NOOP " + b"\\" * 190 + b"\xe2\x82\xac" * 4,
    b"NOOP " + b"a" * 194 + b"\xf0\x9f\x98\x80",
    b"NOOP " + b"\\\x01" * 400,
]


def strict_json(line):
    """line (bytes) as JSON, read as strict UTF-8 (json.loads on bytes would pass encoded surrogates)."""
    return json.loads(line.decode("utf-8"))


def test_event_lines_of_hostile_commands_are_json(server):
    """Every line of both event streams (events.subscribe's NDJSON, GET /api/v1/events' SSE) is strict JSON
    in UTF-8 whatever the commands held, and shows each command."""
    with server.admin() as sub, RawHttp(server) as sse:
        sub.ok("events.subscribe")
        sse.send(request_bytes("GET", "/api/v1/events"))
        assert sse.response()[0] == 200
        c = RawClient(server.host, server.port)
        try:
            c.greet()
            for line in HOSTILE_LINES:
                c.cmd(line)
            c.cmd("QUIT", 221)
        finally:
            c.close()
        ndjson = []
        while not ndjson or ndjson[-1]["event"] != "close":
            ndjson.append(strict_json(sub.read_line()))
        streamed = []
        while not streamed or streamed[-1]["event"] != "close":
            block = sse.read_until(b"\n\n")
            data = [x for x in block.split(b"\n") if x.startswith(b"data: ")]
            if data:
                streamed.append(strict_json(data[0][len(b"data: "):]))
    for events in (ndjson, streamed):
        commands = [e["text"] for e in events if e["event"] == "command"]
        assert len(commands) == len(HOSTILE_LINES) + 2, commands  # EHLO, the lines, QUIT
        assert all(t.startswith("NOOP ") for t in commands[1:-1]), commands
        assert "\u2028" not in "".join(commands) and "\x1b" not in "".join(commands)
    assert [e["text"] for e in ndjson] == [e["text"] for e in streamed]


def test_nul_bytes_do_not_cut_what_is_shown(server):
    """A NUL decoded from an encoded word (=00, base64), an RFC 2231 %00 or a converted part is shown as U+FFFD:
    what follows it is neither hidden from Subject, Name, FileName and Text nor from the search."""
    raw = (b"From: =?UTF-8?Q?Eve=00Mallory?= <eve@example.org>\r\n"
           b"Subject: =?UTF-8?B?cGF5AA==?= =?ISO-8859-1?Q?=00now?= tail\r\n"
           b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
           b"--b\r\nContent-Type: text/plain; charset=ISO-8859-1\r\n"
           b"Content-Transfer-Encoding: quoted-printable\r\n\r\nbefore=00after\r\n"
           b"--b\r\nContent-Type: text/html; charset=x-unknown\r\n"
           b"Content-Transfer-Encoding: base64\r\n\r\nPHA+ADwvcD4=\r\n"
           b"--b\r\nContent-Type: application/octet-stream\r\n"
           b"Content-Disposition: attachment; filename*=UTF-8''a%00b.txt\r\n\r\nx\r\n--b--\r\n")
    msg_id = send(server, raw=raw)
    m = message(server, msg_id)
    assert m["Subject"] == "pay\ufffd\ufffdnow tail"
    assert m["From"]["Name"] == "Eve\ufffdMallory"
    assert m["Text"] == "before\ufffdafter"
    assert m["HTML"] == "<p>\ufffd</p>"
    assert [a["FileName"] for a in m["Attachments"]] == ["a\ufffdb.txt"]
    for query in ("subject:tail", "after"):
        status, got = http_json(server, "GET", "/api/v1/search?query=" + query)
        assert status == 200 and [s["ID"] for s in got["messages"]] == [msg_id], query


def test_tls_records_after_421_are_bounded(server_factory, tmp_path):
    """A client that keeps sending full TLS records of QUIT lines after the 421's close_notify (each one is
    decrypted to look for a command) is cut off when the linger ends, while another client is served."""
    srv = start_with_profile(server_factory, tmp_path, [reply_rule("noop", "421 4.3.2 Going down")])
    c = RawClient(srv.host, srv.port)
    addr = c.local_address()
    try:
        starttls(c)
        c.cmd("EHLO tls.example", 250)
        c.cmd("NOOP", 421)
        assert c.sock.recv(100) == b""  # the server's close_notify
        record = b"QUIT\r\n" * 2730  # about 16 KB: one full record
        other = RawClient(srv.host, srv.port)
        try:
            other.greet()
            deadline, sent, cut = time.monotonic() + HANG_GUARD, 0, False
            while time.monotonic() < deadline and not cut:
                try:
                    c.sock.sendall(record)
                    sent += 1
                except OSError:
                    cut = True
                if sent % 64 == 0:
                    other.cmd("RSET", 250)  # served meanwhile
            assert cut, f"{sent} records after the 421 and the server still reads them"
            other.cmd("QUIT", 221)
        finally:
            other.close()
    finally:
        c.close()
    session, ids = session_findings(srv, addr)
    assert ids == [], session["findings"]  # QUIT lines are no commands lost


def test_list_churn(server):
    """The <sys/queue.h> lists under churn (ASan checks every unlink and the exit): admin clients that stream,
    wait and create scopes come and go in a shuffled order while sessions (greeted, in DATA, silent) and
    messages live in the scopes: a scope may end with its connections still open."""
    rng = random.Random(5)
    with server.admin() as watcher:
        watcher.ok("events.subscribe")
        for _ in range(32):
            creator = server.admin()
            keep = rng.random() < 0.3
            sc = create(creator, keep=keep)
            sub, waiter, sse = server.admin(), server.admin(), RawHttp(server)
            sub.ok("events.subscribe", scope=sc.id)
            waiter.send_obj({"id": 1, "cmd": "messages.wait", "scope": sc.id, "subject": "never*", "timeout": 60})
            sse.send(request_bytes("GET", "/api/v1/events"))
            assert sse.response()[0] == 200
            smtplib_send(sc, "churn@example.test", "=?UTF-8?Q?churn_=C3=A9?=")
            client, in_data, silent = (RawClient("127.0.0.1", sc.port()) for _ in range(3))
            client.greet()
            in_data.greet()
            for line, code in (("MAIL FROM:<a@example.org>", 250), ("RCPT TO:<b@example.org>", 250), ("DATA", 354)):
                in_data.cmd(line, code)
            in_data.send(b"Subject: half\r\n")
            closers = [creator.close, sub.close, waiter.close, sse.close, client.close, in_data.close, silent.close]
            rng.shuffle(closers)
            for close in closers:
                close()
            if keep:
                watcher.ok("scope.delete", scope=sc.id)
            poll(lambda: watcher.ok("scope.list")["scopes"] == [], 10, message="the scopes to end")
        smtplib_send(server, "own@example.test", "own")
        assert subjects(watcher) == ["own"]


def test_a_bad_byte_keeps_the_shift_state(server):
    """A byte a stateful charset cannot read (ISO-2022-JP's JIS mode, UTF-7's base64) is one U+FFFD, and what
    follows is read in the state it was in, not as ASCII from a reset decoder."""
    raw = (b"From: a@example.org\r\nSubject: =?ISO-2022-JP?Q?=1B$B$3=80$s=1B(B_ok?=\r\n"
           b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-7\r\n\r\n+AGEA\x80YgBj-\r\n")
    m = message(server, send(server, raw=raw))
    assert m["Subject"] == "\u3053\ufffd\u3093 ok"
    assert m["Text"] == "a\ufffdbc\r\n"


def bdat_steps(*steps):
    """A script: the greeting and EHLO, each (bytes, expected reply code) in turn, then QUIT."""
    def script(c):
        c.greet()
        for data, code in steps:
            c.send(data)
            c.expect(code)
        c.cmd("QUIT", 221)

    return script


MAIL, RCPT = (b"MAIL FROM:<a@example.org>\r\n", 250), (b"RCPT TO:<b@example.org>\r\n", 250)


def test_bdat_8bit_scan_is_per_transaction(server):
    """8-bit bytes count in the message whose chunks hold them: not in a rejected chunk, nor in a transaction
    reset after BODY=8BITMIME; a BDAT 0 LAST ends the message they were in."""
    eight = b"BDAT 4\r\n\xff\xfe\xfd\xfc"
    assert run_session(server, bdat_steps((eight, 503), MAIL, RCPT, (b"BDAT 4 LAST\r\nab\r\n", 250)))[1] == []
    assert run_session(server, bdat_steps(MAIL, (eight, 554), RCPT, (b"BDAT 4 LAST\r\nab\r\n", 250)))[1] == []
    assert run_session(server, bdat_steps((b"MAIL FROM:<a@example.org> BODY=8BITMIME\r\n", 250), RCPT, (eight, 250),
                                          (b"RSET\r\n", 250), MAIL, RCPT, (b"BDAT 4 LAST\r\nab\r\n", 250)))[1] == []
    assert run_session(server, bdat_steps(MAIL, RCPT, (eight, 250), (b"BDAT 0 LAST\r\n", 250)))[1] == [
        "8bit-without-8bitmime"]


def test_rfc2231_sections_out_of_order_duplicated_and_past_64(server):
    """A name from 70 sections sent backwards, one twice: read in their numbers' order, the first of a
    number, up to the 64th (docs/limits.md)."""
    letter = [chr(ord("a") + i % 26) for i in range(70)]
    params = "".join(f"; name*{i}={letter[i]}" for i in reversed(range(70))) + "; name*3=Z"
    raw = (b"From: a@example.org\r\nSubject: s\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n"
           b"\r\n--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n--b\r\nContent-Type: application/octet-stream"
           + params.encode() + b"\r\n\r\nx\r\n--b--\r\n")
    (att,) = message(server, send(server, raw=raw))["Attachments"]
    assert att["FileName"] == "".join(letter[:64]), att


def cpu_seconds(pid):
    """The user and system CPU time of process pid so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_bcc_of_many_recipients_costs_linear_time(server):
    """Bcc (the envelope recipients the header fields do not show, the first of each) of messages with 1000
    recipients and 300 header addresses: a search over 100 of them costs the server little CPU (comparing
    every recipient with every address shown, and with the Bcc list it grew, took 24 ms a message with ASan)."""
    header = ",\r\n ".join(",".join(f"h{i}{j}@example.org" for j in range(5)) for i in range(30))
    rcpts = [f"r{i % 900}@example.org" for i in range(999)] + ["H00@example.ORG"]  # 99 twice, one in To
    envelope = b"MAIL FROM:<a@example.org>\r\n" + b"".join(b"RCPT TO:<%s>\r\n" % r.encode() for r in rcpts)
    content = f"From: a@example.org\r\nTo: {header}\r\nCc: {header}\r\nSubject: many\r\n\r\nhi\r\n.\r\n".encode()
    c = RawClient(server.host, server.port)
    try:
        c.greet()
        for _ in range(100):
            c.send(envelope + b"DATA\r\n")
            for _ in range(1001):
                c.expect(250)
            c.expect(354)
            c.send(content)
            c.expect(250)
        c.cmd("QUIT", 221)
    finally:
        c.close()
    before = cpu_seconds(server.pid)
    status, got = http_json(server, "GET", "/api/v1/search?query=bcc:r899@&limit=1")
    spent = cpu_seconds(server.pid) - before
    assert status == 200 and got["messages_count"] == 100, got
    assert [a["Address"] for a in got["messages"][0]["Bcc"]] == [f"r{i}@example.org" for i in range(900)]
    assert spent < 1.5, f"{spent:.2f} s of CPU for one search over 100 messages"
