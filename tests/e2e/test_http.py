"""HTTP/1.1 on the admin port (docs/http.md): every command as POST /api/v1/<command>, the REST reads, the event
stream, the long poll, the token, the limits, and the framing (split writes, pipelining, slow clients), through
Python's urllib, curl and raw sockets. The NDJSON side on the same port is unchanged (test_admin*.py)."""

import email
import email.utils
import hashlib
import json
import shutil
import socket
import subprocess
import threading
import time

import pytest

from conftest import check_error, make_message, poll, queued_id, run_binary
from harness.env import HANG_GUARD, IO_TIMEOUT
from harness.http import RawHttp, base_url, http, http_json, request_bytes

TOKEN = "s3cret-http-token"
CURL = shutil.which("curl")


def send(srv, to="http@example.com", subject="over http", body="Hello over HTTP.\r\n", sender="app@example.org",
         raw=None):
    """One message (raw bytes, or made of the others) through smtplib; its id."""
    msg = raw if raw is not None else make_message(subject, body, sender=sender, to=to)
    with srv.smtp(helo="http.test.example") as client:
        client.mail(sender)
        client.rcpt(to)
        code, resp = client.data(msg)
        assert code == 250, resp
    return queued_id(resp)


def post(srv, cmd, body=None, token=None):
    return http_json(srv, "POST", f"/api/v1/{cmd}", body if body is not None else b"", token)


def curl(srv, *args, token=None):
    """curl's output (the response body, then the status on the last line)."""
    if CURL is None:
        pytest.skip("curl is not installed")
    argv = [CURL, "-sS", "--max-time", str(IO_TIMEOUT), "-w", "\n%{http_code}", *args]
    if token is not None:
        argv += ["-H", f"Authorization: Bearer {token}"]
    out = subprocess.run(argv, capture_output=True, timeout=IO_TIMEOUT + 5, check=True).stdout
    body, _, status = out.rpartition(b"\n")
    return int(status), body


# -- commands -------------------------------------------------------------------------------------------------


def test_every_command_is_the_ndjson_response(server):
    """Each command over POST answers the object the NDJSON line gets (its keys, in order; values that change
    from one call to the next aside)."""
    msg_id = send(server)
    server.wait_for_messages(1)
    with server.admin() as admin:
        sid = admin.ok("sessions.list")["recent"][0]["id"]
        requests = {
            "ping": {}, "version": {}, "stats": {}, "profile.get": {}, "profile.clear": {},
            "profile.validate": {"name": "mailbox-450-unavailable"}, "profile.load": {"name": "mailbox-450-unavailable"},
            "messages.list": {"to": "*@example.com"}, "messages.get": {"message": msg_id},
            "messages.wait": {"to": "http@example.com", "timeout": 1}, "sessions.list": {},
            "sessions.get": {"session": sid}, "tls.ca": {},
        }
        for cmd, args in requests.items():
            want = admin.ok(cmd, **args)
            status, got = post(server, cmd, {"id": want["id"], **args})
            assert status == 200, (cmd, got)
            assert list(got) == list(want), (cmd, got, want)
            if cmd not in ("stats", "sessions.list", "sessions.get"):
                assert got == want, cmd
        status, got = post(server, "messages.delete", {"message": msg_id})
        assert (status, got) == (200, {"id": None, "ok": True, "deleted": msg_id})
        status, got = post(server, "messages.clear")
        assert (status, got["cleared"]) == (200, 0)
        status, got = post(server, "reset")
        assert status == 200 and got["ok"] is True and got["rules"] == 0


@pytest.mark.parametrize("path,body,status,code", [
    ("/api/v1/pong", b"", 404, "unknown_command"),
    ("/api/v1/ping", b'{"x": 1}', 400, "bad_argument"),
    ("/api/v1/ping", b"{not json", 400, "invalid_json"),
    ("/api/v1/ping", b"[1, 2]", 400, "bad_request"),
    ("/api/v1/ping", b'{"cmd": "stats"}', 400, "bad_request"),
    ("/api/v1/ping", b'{"a": 1, "a": 2}', 400, "bad_request"),
    ("/api/v1/ping", b'{"id": "pi\\u0000ng"}', 400, "bad_request"),
    ("/api/v1/messages.get", b'{"message": "nope"}', 404, "not_found"),
    ("/api/v1/profile.load", b'{"profile": {"rules": [{"when": {"stage": "rpct"}}]}}', 422, "invalid_profile"),
    ("/api/v1/profile.load", b'{"path": "/etc/passwd"}', 403, "forbidden"),
    ("/api/v1/messages.wait", b'{"timeout": 0}', 408, "timeout"),
])
def test_errors_have_their_status(server, path, body, status, code):
    got_status, got = http_json(server, "POST", path, body)
    assert got_status == status, got
    check_error(got, code)


def test_pretty_printed_body_and_id(server):
    """A body may span lines (curl --data-binary @file); the id is echoed."""
    status, got = http_json(server, "POST", "/api/v1/ping", b'{\n  "id": "multi"\n}\n')
    assert (status, got) == (200, {"id": "multi", "ok": True, "pong": True})


def test_routes_and_methods(server):
    for method, path, status, code in [
        ("GET", "/nope", 404, "not_found"),
        ("GET", "/api/v1/nope", 404, "not_found"),
        ("PUT", "/api/v1/stats", 405, "method_not_allowed"),
        ("POST", "/healthz", 405, "method_not_allowed"),
        ("GET", "/api/v1/messages/", 404, "not_found"),
        ("GET", "/api/v1/messages?bogus=1", 400, "bad_argument"),
        ("GET", "/api/v1/messages?to=a&to=b", 400, "bad_request"),
        ("GET", "/api/v1/messages?limit=many", 400, "bad_argument"),
        ("GET", "/api/v1/messages?to=%zz", 400, "bad_request"),
        ("GET", "/api/v1/sessions/x", 400, "bad_argument"),
    ]:
        got_status, got = http_json(server, method, path, b"" if method in ("PUT", "POST") else None)
        assert got_status == status, (method, path, got)
        check_error(got, code)


def test_curl(server):
    """curl, as a shell user runs it: a command, a REST read, an error's status."""
    status, body = curl(server, "-d", '{"id": 7}', base_url(server) + "/api/v1/ping")
    assert status == 200 and json.loads(body) == {"id": 7, "ok": True, "pong": True}
    status, body = curl(server, base_url(server) + "/api/v1/stats")
    assert status == 200 and json.loads(body)["ok"] is True
    status, body = curl(server, "-X", "DELETE", base_url(server) + "/api/v1/messages/unknown")
    assert status == 404 and json.loads(body)["error"]["code"] == "not_found"


def test_unix_socket(admin_srv):
    status, body = curl(admin_srv, "--unix-socket", admin_srv.admin_unix, "-d", "", "http://localhost/api/v1/ping")
    assert status == 200 and json.loads(body)["pong"] is True


def test_ndjson_still_on_the_same_port(server):
    with server.admin() as admin:
        assert admin.ok("ping")["pong"] is True
    with RawHttp(server) as c:
        c.send(b'  {"cmd": "ping", "id": 1}\n')
        assert c.read_until(b"\n") == b'{"id":1,"ok":true,"pong":true}\n'


# -- health ---------------------------------------------------------------------------------------------------


def test_health(server_factory):
    srv = server_factory("--admin-token", TOKEN)
    for path, status in (("/healthz", "alive"), ("/readyz", "ready")):
        code, got = http_json(srv, "GET", path)  # no token needed
        assert (code, got) == (200, {"ok": True, "status": status})
        code, hdrs, body = http(srv, "HEAD", path)
        assert code == 200 and body == b"" and int(hdrs["Content-Length"]) > 0


# -- the token ------------------------------------------------------------------------------------------------


def test_token(server_factory):
    srv = server_factory("--admin-token", TOKEN)
    status, hdrs, body = http(srv, "POST", "/api/v1/ping", b"")
    assert status == 401 and hdrs["WWW-Authenticate"] == "Bearer" and hdrs["Connection"] == "close"
    check_error(json.loads(body), "unauthorized")
    status, got = http_json(srv, "GET", "/api/v1/stats", token="wrong")
    assert status == 401
    status, got = http_json(srv, "POST", "/api/v1/ping", {"token": TOKEN})  # only the header counts over HTTP
    assert status == 401
    status, got = http_json(srv, "POST", "/api/v1/ping", b"", token=TOKEN)
    assert (status, got["pong"]) == (200, True)
    status, body = curl(srv, base_url(srv) + "/api/v1/stats", token=TOKEN)
    assert status == 200
    with srv.admin(token=TOKEN) as admin:
        assert admin.ok("ping")["pong"] is True


def test_token_is_checked_before_the_body_is_read(server_factory):
    """A stranger announcing a 100 MB body is refused at its header: the server never reads or holds it."""
    srv = server_factory("--admin-token", TOKEN)
    with RawHttp(srv) as c:
        c.send(b"POST /api/v1/ping HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100000000\r\n\r\n")
        status, headers, body = c.response()
        assert status == 401 and headers["connection"] == "close"
        assert c.closed()


def test_every_request_carries_the_token(server_factory):
    """As on the NDJSON side, a connection that showed the token once is not trusted for the next request."""
    srv = server_factory("--admin-token", TOKEN)
    with RawHttp(srv) as c:
        c.send(request_bytes("GET", "/api/v1/stats", token=TOKEN) + request_bytes("GET", "/api/v1/stats"))
        assert c.response()[0] == 200
        assert c.response()[0] == 401


def test_cross_site_requests_are_refused(server_factory):
    srv = server_factory()
    host, port = srv.admin_address
    status, got = http_json(srv, "POST", "/api/v1/reset", b"", headers={"Origin": "http://evil.example"})
    assert status == 403 and got["error"]["code"] == "forbidden"
    status, got = http_json(srv, "GET", "/api/v1/messages", headers={"Host": f"evil.example:{port}"})
    assert status == 403 and "loopback" in got["error"]["message"]
    status, got = http_json(srv, "GET", "/api/v1/stats", headers={"Origin": f"http://{host}:{port}"})
    assert status == 200
    status, got = http_json(srv, "GET", "/api/v1/stats", headers={"Host": f"localhost:{port}"})
    assert status == 200
    # With a token, a browser on another name (a published container port) is fine: the token guards.
    srv2 = server_factory("--admin-token", TOKEN)
    status, got = http_json(srv2, "GET", "/api/v1/stats", token=TOKEN, headers={"Host": "smtpfault:2580"})
    assert status == 200


# -- limits ---------------------------------------------------------------------------------------------------


def test_head_and_target_limits(server):
    with RawHttp(server) as c:
        c.send(b"GET /api/v1/stats HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 70000 + b"\r\n\r\n")
        status, headers, body = c.response()
        assert status == 431 and json.loads(body)["error"]["code"] == "line_too_long"
        assert c.closed()
    with RawHttp(server) as c:
        c.send(b"GET /api/v1/stats?to=" + b"a" * 9000 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        status, headers, body = c.response()
        assert status == 414 and json.loads(body)["error"]["code"] == "line_too_long"


def test_body_limit(server):
    with RawHttp(server) as c:  # announced: refused before a byte of it is read
        c.send(b"POST /api/v1/ping HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 8388609\r\n\r\n")
        status, headers, body = c.response()
        assert status == 413 and json.loads(body)["error"]["code"] == "line_too_long"
    with RawHttp(server) as c:  # chunked: refused once it passes the bound
        c.send(b"POST /api/v1/ping HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n")
        chunk = b"%x\r\n" % (1 << 20) + b" " * (1 << 20) + b"\r\n"
        try:
            for _ in range(9):
                c.send(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass
        status, headers, body = c.response()
        assert status == 413
    # The largest body allowed runs: an 8 MiB request (a profile of 4 MiB inline fits).
    big = json.dumps({"id": "x" * (8 * 1024 * 1024 - 20)}).encode()
    assert len(big) <= 8 * 1024 * 1024
    status, got = http_json(server, "POST", "/api/v1/ping", big)
    assert status == 200 and got["pong"] is True


def test_bad_http_is_answered_400(server):
    for data in (b"GET / HTTP/9.9\r\n\r\n", b"GET\x01 / HTTP/1.1\r\n\r\n", b"POST /api/v1/ping HTTP/1.1\r\n"
                 b"Content-Length: 5\r\nContent-Length: 6\r\n\r\n"):
        with RawHttp(server) as c:
            c.send(data)
            status, headers, body = c.response()
            assert status == 400 and headers["connection"] == "close", data
            assert json.loads(body)["error"]["code"] == "bad_request"
            assert c.closed()


# -- framing --------------------------------------------------------------------------------------------------


def test_one_byte_writes(server):
    data = request_bytes("POST", "/api/v1/ping?", {"id": "bytes"}, headers={"X-Pad": "1"})
    with RawHttp(server) as c:
        c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(len(data)):
            c.send(data[i:i + 1])
        status, got = c.json()
        assert (status, got) == (200, {"id": "bytes", "ok": True, "pong": True})


def test_pipelined_requests_answer_in_order(server):
    n = 200
    data = b"".join(request_bytes("POST", "/api/v1/ping", {"id": i}) for i in range(n))
    data += request_bytes("GET", "/api/v1/stats")
    with RawHttp(server) as c:
        c.send(data)
        for i in range(n):
            status, got = c.json()
            assert (status, got["id"]) == (200, i)
        status, got = c.json()
        assert status == 200 and "sessions" in got


def test_keep_alive_and_close(server):
    with RawHttp(server) as c:
        c.send(request_bytes("GET", "/healthz") + request_bytes("GET", "/healthz", headers={"Connection": "close"}))
        status, headers, _ = c.response()
        assert status == 200 and "connection" not in headers
        status, headers, _ = c.response()
        assert status == 200 and headers["connection"] == "close"
        assert c.closed()
    with RawHttp(server) as c:  # HTTP/1.0 closes after its response
        c.send(request_bytes("GET", "/healthz", version="HTTP/1.0"))
        assert c.response()[0] == 200
        assert c.closed()


def test_expect_100_continue(server):
    with RawHttp(server) as c:
        body = json.dumps({"id": "continued"}).encode()
        c.send(b"POST /api/v1/ping HTTP/1.1\r\nHost: 127.0.0.1\r\nExpect: 100-continue\r\nContent-Length: %d\r\n\r\n" % len(body))
        assert c.read_until(b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
        c.send(body)
        assert c.json() == (200, {"id": "continued", "ok": True, "pong": True})


def test_slow_client(server):
    """A request that trickles in is answered; one that stops coming gets 408 after 10 s and is closed."""
    data = request_bytes("GET", "/api/v1/stats")
    with RawHttp(server) as c:
        for i in range(0, len(data), 8):
            c.send(data[i:i + 8])
            time.sleep(0.05)
        assert c.response()[0] == 200
        c.send(b"GET /api/v1/st")
        started = time.monotonic()
        status, headers, body = c.response(timeout=HANG_GUARD)
        assert status == 408 and json.loads(body)["error"]["code"] == "timeout"
        assert time.monotonic() - started >= 9.5
        assert c.closed()


def test_a_client_that_does_not_read_is_dropped(server):
    """Output is bounded as on the NDJSON side: pipelined requests whose responses are not read."""
    payload = json.dumps({"id": "y" * 60000}).encode()
    with RawHttp(server) as c:
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sent = 0
        try:
            for _ in range(2000):
                c.send(request_bytes("POST", "/api/v1/ping", payload))
                sent += 1
        except (BrokenPipeError, ConnectionResetError, socket.timeout):
            pass
        poll(lambda: "does not read its responses" in server.log(), 20, message="the server drops the client")


# -- long poll and events ----------------------------------------------------------------------------------


def test_messages_wait_is_a_long_poll(server):
    with RawHttp(server) as c:
        c.send(request_bytes("POST", "/api/v1/messages.wait", {"id": "w", "to": "late@example.com", "timeout": 30}))
        c.send(request_bytes("GET", "/healthz"))  # held behind the wait, as on the NDJSON side
        with pytest.raises(TimeoutError):
            c.response(timeout=0.5)
        msg_id = send(server, to="late@example.com")
        status, got = c.json()
        assert status == 200 and got["id"] == "w" and got["message"]["id"] == msg_id
        assert c.response()[0] == 200


def test_events_stream(server):
    with RawHttp(server) as c:
        c.send(request_bytes("GET", "/api/v1/events"))
        status, headers, _ = c.response()
        assert status == 200 and headers["content-type"] == "text/event-stream"
        send(server)
        seen = []
        while not seen or seen[-1][1]["event"] != "close":
            seen.append(c.event())
        ids = [i for i, _ in seen]
        assert ids == list(range(1, len(ids) + 1))
        assert {"connect", "message", "close"} <= {e["event"] for _, e in seen}


def test_events_reconnect_frees_the_slot(server):
    """A reader that goes away frees its subscription at once: reconnecting more often than the 16 slots works,
    and the 17th reader at a time is refused with 429."""
    for _ in range(24):
        with RawHttp(server) as c:
            c.send(request_bytes("GET", "/api/v1/events"))
            assert c.response()[0] == 200
        poll(lambda: post(server, "stats")[0] == 200, 5)
    readers = []
    try:
        def subscribed():
            c = RawHttp(server)
            c.send(request_bytes("GET", "/api/v1/events"))
            readers.append(c)
            return c.response()[0]
        assert [subscribed() for _ in range(16)] == [200] * 16
        c = RawHttp(server)
        readers.append(c)
        c.send(request_bytes("GET", "/api/v1/events"))
        status, headers, body = c.response()
        assert status == 429 and json.loads(body)["error"]["code"] == "too_many_subscribers"
    finally:
        for c in readers:
            c.close()
    # and after the readers went, a reader gets a stream again
    def again():
        with RawHttp(server) as c:
            c.send(request_bytes("GET", "/api/v1/events"))
            return c.response()[0] == 200
    poll(again, 10)


# -- REST reads -----------------------------------------------------------------------------------------------


def test_rest_messages(server):
    first = send(server, to="one@example.com", subject="first")
    second = send(server, to="two@example.com", subject="second", sender="other@example.org")
    server.wait_for_messages(2)
    status, got = http_json(server, "GET", "/api/v1/messages")
    assert status == 200 and [m["id"] for m in got["messages"]] == [first, second]
    status, got = http_json(server, "GET", "/api/v1/messages?to=two%40example.com")
    assert [m["id"] for m in got["messages"]] == [second]
    status, got = http_json(server, "GET", "/api/v1/messages?from=app@*&limit=1")
    assert [m["id"] for m in got["messages"]] == [first] and got["truncated"] is False
    status, got = http_json(server, "GET", "/api/v1/messages?subject=SEC*")  # a glob, without regard to case
    assert [m["id"] for m in got["messages"]] == [second]
    status, got = http_json(server, "GET", f"/api/v1/messages?since={first}")
    assert [m["id"] for m in got["messages"]] == [second]
    status, got = http_json(server, "GET", f"/api/v1/messages/{first}")
    assert status == 200 and got["message"]["id"] == first and ["Subject", "first"] in got["headers"]
    status, hdrs, raw = http(server, "GET", f"/api/v1/messages/{first}/raw")
    assert status == 200 and hdrs["Content-Type"] == "message/rfc822"
    assert raw == server.message(first).raw
    status, got = http_json(server, "GET", "/api/v1/messages/nope/raw")
    assert status == 404
    status, got = http_json(server, "DELETE", f"/api/v1/messages/{first}")
    assert (status, got["deleted"]) == (200, first)
    status, hdrs, body = http(server, "DELETE", "/api/v1/messages")  # Mailpit's answer (test_mailpit_delete)
    assert (status, body) == (200, b"ok")
    assert http_json(server, "GET", "/api/v1/messages")[1]["messages"] == []


def test_rest_sessions_stats_profile(server):
    send(server)
    poll(lambda: http_json(server, "GET", "/api/v1/sessions")[1]["recent"], 10)
    status, got = http_json(server, "GET", "/api/v1/sessions")
    assert status == 200
    sid = got["recent"][0]["id"]
    status, got = http_json(server, "GET", f"/api/v1/sessions/{sid}")
    assert status == 200 and got["session"]["id"] == sid and got["session"]["transcript"]
    status, got = http_json(server, "GET", "/api/v1/sessions/99999")
    assert status == 404
    status, got = http_json(server, "GET", "/api/v1/stats")
    assert status == 200 and got["messages"]["accepted"] >= 1
    status, got = http_json(server, "GET", "/api/v1/profile")
    with server.admin() as admin:
        assert status == 200 and got == {**admin.ok("profile.get"), "id": None}


def test_rest_catalog_is_every_shipped_profile(server):
    status, got = http_json(server, "GET", "/api/v1/profiles")
    assert status == 200 and got["count"] == len(got["profiles"]) > 10
    listed = run_binary(["profiles"]).stdout.split("\n")
    names = [line.split()[0] for line in listed if line.strip()]
    assert [p["name"] for p in got["profiles"]] == names
    for p in got["profiles"]:
        assert p["valid"] is True and p["description"] and p["rules"] >= 0
    # one of them, loaded by name
    status, got = post(server, "profile.load", {"name": names[0]})
    assert status == 200 and got["name"]


def test_concurrent_http_and_ndjson_clients(server):
    """Many HTTP connections at once next to NDJSON ones: each answered, none held up by another."""
    errors = []

    def worker(i):
        try:
            for j in range(20):
                status, got = post(server, "ping", {"id": [i, j]})
                assert (status, got["id"]) == (200, [i, j])
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    with server.admin() as admin:
        for _ in range(20):
            assert admin.ok("ping")["pong"] is True
    for t in threads:
        t.join(HANG_GUARD)
    assert not errors, errors


def test_subject_filter_over_ndjson_and_wait(server):
    """subject is a messages.list and messages.wait argument on both sides: the Subject field unfolded, as sent."""
    folded = send(server, raw=b"From: a@example.org\r\nSubject: a long\r\n folded subject\r\nX: y\r\n\r\nHi.\r\n")
    plain = send(server, subject="Plain")
    with server.admin() as admin:
        assert [m["id"] for m in admin.ok("messages.list", subject="a long folded*")["messages"]] == [folded]
        assert [m["id"] for m in admin.ok("messages.list", subject="plain")["messages"]] == [plain]
        assert admin.ok("messages.list", subject="")["messages"] == []
        assert admin.ok("messages.wait", subject="PLAIN", timeout=1)["message"]["id"] == plain
    with RawHttp(server) as c:
        c.send(request_bytes("POST", "/api/v1/messages.wait", {"subject": "later *", "timeout": 30}))
        later = send(server, subject="Later on")
        status, got = c.json()
        assert (status, got["message"]["id"]) == (200, later)


# -- Mailpit's message API ----------------------------------------------------------------------------------

MAILPIT_MESSAGE_KEYS = ["ID", "MessageID", "From", "To", "Cc", "Bcc", "ReplyTo", "ReturnPath", "Subject",
                        "ListUnsubscribe", "Date", "Tags", "Username", "Text", "HTML", "Size", "Inline",
                        "Attachments"]
MAILPIT_SUMMARY_KEYS = ["ID", "MessageID", "From", "To", "Cc", "Bcc", "ReplyTo", "Read", "Subject", "Created",
                        "Username", "Tags", "Size", "Attachments", "Snippet"]


def nodemailer_rich(srv, to, subject, bcc=None):
    """A multipart/alternative message with an attachment and an inline image, through Nodemailer."""
    from harness.clients import nodemailer
    message = {"from": '"The App" <app@example.org>', "to": to, "cc": "Carol <carol@example.com>",
               "subject": subject, "text": "Hello Alice,\nyour code is 123456.\n",
               "html": '<p>Hello <b>Alice</b>, your code is 123456.</p><img src="cid:logo@app">',
               "messageId": f"<{subject.replace(' ', '-')}@app.example.org>",
               "headers": {"List-Unsubscribe": "<mailto:unsub@example.org>, <https://example.org/unsub>"},
               "attachments": [{"filename": "report.txt", "content": "line 1\nline 2\n"},
                               {"filename": "logo.png", "content": "iVBORw0KGgo=", "encoding": "base64",
                                "cid": "logo@app"}]}
    if bcc:
        message["bcc"] = bcc
    result = nodemailer(srv, message)
    assert result.get("ok") is not False, result
    return result


def test_mailpit_message_latest(server):
    status, got = http_json(server, "GET", "/api/v1/message/latest")
    assert status == 404 and got["error"]["code"] == "not_found"
    nodemailer_rich(server, '"Alice A." <alice@example.com>', "Your code", bcc="hidden@example.com")
    server.wait_for_messages(1)
    status, m = http_json(server, "GET", "/api/v1/message/latest")
    assert status == 200 and list(m) == MAILPIT_MESSAGE_KEYS
    assert m["From"] == {"Name": "The App", "Address": "app@example.org"}
    assert m["To"] == [{"Name": "Alice A.", "Address": "alice@example.com"}]
    assert m["Cc"] == [{"Name": "Carol", "Address": "carol@example.com"}]
    assert m["Bcc"] == [{"Name": "", "Address": "hidden@example.com"}]
    assert m["Subject"] == "Your code" and m["MessageID"] == "Your-code@app.example.org"
    assert m["ReturnPath"] == "app@example.org" and m["Username"] == "" and m["Tags"] == []
    assert m["Text"] == "Hello Alice,\r\nyour code is 123456.\r\n"  # decoded, line ends as received
    assert "<b>Alice</b>" in m["HTML"]
    assert m["ListUnsubscribe"]["Links"] == ["mailto:unsub@example.org", "https://example.org/unsub"]
    assert [a["FileName"] for a in m["Attachments"]] == ["report.txt"]
    assert m["Attachments"][0]["Size"] == 14 and m["Attachments"][0]["ContentType"] == "text/plain"
    content = b"line 1\nline 2\n"
    assert m["Attachments"][0]["Checksums"] == {"MD5": hashlib.md5(content).hexdigest(),
                                                "SHA1": hashlib.sha1(content).hexdigest(),
                                                "SHA256": hashlib.sha256(content).hexdigest()}
    assert [(a["FileName"], a["ContentID"]) for a in m["Inline"]] == [("logo.png", "logo@app")]
    status, again = http_json(server, "GET", f"/api/v1/message/{m['ID']}")
    assert (status, again) == (200, m)
    # Date is the Date field Nodemailer wrote, in RFC 3339 with the field's offset, as Mailpit gives it.
    status, _, raw = http(server, "GET", f"/api/v1/messages/{m['ID']}/raw")
    field = email.message_from_bytes(raw)["Date"]
    assert field and m["Date"] == email.utils.parsedate_to_datetime(field).isoformat().replace("+00:00", "Z")


def test_mailpit_date(server):
    """Date: the message's Date field in its own offset; the time it was received when it has none, or one that
    is not a date."""
    for field, want in (("Date: Fri, 29 Feb 2008 12:00:00 -0700 (MST)\r\n", "2008-02-29T12:00:00-07:00"),
                        ("Date: 6 Dec 2026 14:40 +0100\r\n", "2026-12-06T14:40:00+01:00"),
                        ("Date: yesterday\r\n", None), ("", None)):
        msg_id = send(server, raw=f"From: a@example.org\r\n{field}Subject: d\r\n\r\nHi.\r\n".encode())
        status, m = http_json(server, "GET", f"/api/v1/message/{msg_id}")
        _, summary = http_json(server, "GET", f"/api/v1/messages/{msg_id}")
        assert status == 200 and m["Date"] == (want or summary["message"]["received"]), (field, m["Date"])


def test_mailpit_search(server):
    nodemailer_rich(server, "alice@example.com", "first mail")
    nodemailer_rich(server, "bob@example.com", "second mail")
    send(server, to="dave@example.com", subject="plain one")
    server.wait_for_messages(3)
    status, got = http_json(server, "GET", "/api/v1/search?query=to:alice@example.com")
    assert status == 200
    assert list(got) == ["total", "unread", "count", "messages_count", "messages_unread", "start", "tags", "messages"]
    assert (got["total"], got["messages_count"], got["count"]) == (3, 1, 1)
    s = got["messages"][0]
    assert list(s) == MAILPIT_SUMMARY_KEYS and s["Subject"] == "first mail" and s["Attachments"] == 2
    assert s["Snippet"] == "Hello Alice, your code is 123456."
    status, got = http_json(server, "GET", "/api/v1/search?query=" + "subject:%22mail%22")
    assert [m["Subject"] for m in got["messages"]] == ["second mail", "first mail"]  # newest first
    status, got = http_json(server, "GET", "/api/v1/search?query=mail+-to:bob")
    assert [m["Subject"] for m in got["messages"]] == ["first mail"]
    status, got = http_json(server, "GET", "/api/v1/search?query=123456&limit=1&start=1")
    assert got["messages_count"] == 2 and [m["Subject"] for m in got["messages"]] == ["first mail"]
    status, got = http_json(server, "GET", "/api/v1/search?query=from:app@example.org+addressed:dave")
    assert [m["Subject"] for m in got["messages"]] == ["plain one"]
    status, got = http_json(server, "GET", "/api/v1/search?query=is:unread")
    assert status == 400 and got["error"]["code"] == "bad_argument"
    status, got = http_json(server, "GET", "/api/v1/search")
    assert status == 400


def test_mailpit_delete(server):
    ids = [send(server, subject=f"m{i}") for i in range(3)]
    server.wait_for_messages(3)
    status, hdrs, body = http(server, "DELETE", "/api/v1/messages", {"IDs": ids[:2]})
    assert (status, hdrs["Content-Type"], body) == (200, "text/plain", b"ok")
    status, got = http_json(server, "GET", "/api/v1/messages")
    assert [m["id"] for m in got["messages"]] == ids[2:]
    status, got = http_json(server, "DELETE", "/api/v1/messages", {"IDs": ["nope"]})
    assert status == 404
    status, hdrs, body = http(server, "DELETE", "/api/v1/messages")
    assert (status, body) == (200, b"ok")
    assert http_json(server, "GET", "/api/v1/messages")[1]["messages"] == []


# -- scopes ---------------------------------------------------------------------------------------------------


def send_to(port, to="scoped@example.com", subject="in a scope"):
    import smtplib
    msg = make_message(subject, "Hi.\r\n", sender="app@example.org", to=to)
    with smtplib.SMTP("127.0.0.1", port, timeout=IO_TIMEOUT) as client:
        client.ehlo("scope.test.example")
        client.mail("app@example.org")
        client.rcpt(to)
        code, resp = client.data(msg)
        assert code == 250, resp
    return queued_id(resp)


def scope_ids(srv):
    return [s["scope"] for s in post(srv, "scope.list")[1]["scopes"]]


def test_scopes_over_http(server):
    """Every route takes scope; a scope made over HTTP outlives the connection unless keep is false."""
    status, got = post(server, "scope.create", {"profile": {"rules": []}})
    assert status == 200 and got["keep"] is True
    sc, port = got["scope"], got["listeners"]["smtp"]["port"]
    assert sc in scope_ids(server)  # the connection that made it is gone; the scope is not
    with RawHttp(server) as events:
        events.send(request_bytes("GET", f"/api/v1/events?scope={sc}"))
        assert events.response()[0] == 200
        send(server, subject="not in the scope")  # the server's own: not on this stream
        msg_id = send_to(port)
        seen = []
        while not seen or seen[-1]["event"] != "close":
            seen.append(events.event()[1])
        assert {e.get("scope") for e in seen} == {sc}
    status, got = http_json(server, "GET", f"/api/v1/messages?scope={sc}")
    assert [m["id"] for m in got["messages"]] == [msg_id]
    assert msg_id not in [m["id"] for m in http_json(server, "GET", "/api/v1/messages")[1]["messages"]]
    assert http_json(server, "GET", f"/api/v1/messages/{msg_id}?scope={sc}")[0] == 200
    assert http_json(server, "GET", f"/api/v1/messages/{msg_id}")[0] == 404
    status, hdrs, raw = http(server, "GET", f"/api/v1/messages/{msg_id}/raw?scope={sc}")
    assert status == 200 and b"Subject: in a scope" in raw
    assert http_json(server, "GET", f"/api/v1/message/latest?scope={sc}")[1]["ID"] == msg_id
    assert http_json(server, "GET", f"/api/v1/search?query=to:scoped&scope={sc}")[1]["messages_count"] == 1
    assert http_json(server, "GET", "/api/v1/search?query=to:scoped")[1]["messages_count"] == 0
    status, got = http_json(server, "GET", "/api/v1/search?query=to:scoped&scope=s999")
    assert (status, got["error"]["code"]) == (404, "not_found"), got
    status, got = http_json(server, "GET", f"/api/v1/search?query=to:scoped&scope={sc}&colour=red")
    assert (status, got["error"]["code"]) == (400, "bad_argument"), got
    assert http_json(server, "GET", f"/api/v1/stats?scope={sc}")[1]["messages"]["accepted"] == 1
    status, got = http_json(server, "GET", f"/api/v1/sessions?scope={sc}")
    assert status == 200 and len(got["recent"]) == 1
    status, got = post(server, "messages.wait", {"scope": sc, "to": "scoped@*", "timeout": 5})
    assert (status, got["message"]["id"]) == (200, msg_id)
    status, hdrs, body = http(server, "DELETE", f"/api/v1/messages?scope={sc}")
    assert (status, body) == (200, b"ok")
    assert post(server, "scope.delete", {"scope": sc})[1] == {"id": None, "ok": True, "deleted": sc}
    status, got = http_json(server, "GET", f"/api/v1/messages?scope={sc}")
    assert status == 404 and got["error"]["code"] == "not_found"
    # keep: false, asked for: the scope ends with the HTTP connection that made it
    status, got = post(server, "scope.create", {"profile": {"rules": []}, "keep": False})
    assert status == 200 and got["keep"] is False
    poll(lambda: got["scope"] not in scope_ids(server), 10, message="the scope ends with its connection")
