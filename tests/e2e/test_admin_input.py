"""Bad input on the admin socket, half-open and silent connections, the token, and remote addresses.

Every bad line gets {"ok": false, "error": {"code", "message"}} with a stable code, and the connection stays
usable: each case is followed by a ping on the same connection.
"""

import json
import socket
import time

import pytest

from conftest import AdminClient, Server, check_error

LINE_MAX = 8 * 1024 * 1024


def still_usable(admin):
    rid = f"after-{admin.new_id()}"
    assert admin.request({"id": rid, "cmd": "ping"}) == {"id": rid, "ok": True, "pong": True}


BAD_LINES = [
    # (bytes sent, code, the id the response carries)
    (b"garbage", "invalid_json", None),
    (b"\xff\xfe\x80\x81 binary", "invalid_json", None),
    (b'{"cmd": "ping"', "invalid_json", None),
    (b"{'cmd': 'ping'}", "invalid_json", None),
    (b'{"cmd": "ping",}', "invalid_json", None),
    (b'{"cmd": "ping"} trailing', "invalid_json", None),
    (b'{"id": 1, "cmd": "ping"}{"id": 2, "cmd": "reset"}', "invalid_json", None),
    (b'{"cmd": "ping", "id": "\xff"}', "invalid_json", None),
    (b"\x00\x00\x00", "invalid_json", None),
    (b'{"cmd": "ping"}\x00', "invalid_json", None),
    (b'\x00{"cmd": "ping"}', "invalid_json", None),
    (b'\x01\x1f{"cmd": "ping"}', "invalid_json", None),
    (b'{"cmd": "pi\x00ng"}', "invalid_json", None),
    (b'{"cmd": "ping", "id": "a\x0bb"}', "invalid_json", None),
    (b"[1, 2]", "bad_request", None),
    (b'[{"cmd": "ping"}]', "bad_request", None),
    (b'"ping"', "bad_request", None),
    (b"42", "bad_request", None),
    (b"null", "bad_request", None),
    (b"true", "bad_request", None),
    (b"{}", "bad_request", None),
    (b'{"id": 7}', "bad_request", 7),
    (b'{"id": "s", "cmd": 5}', "bad_request", "s"),
    (b'{"id": 8, "cmd": null}', "bad_request", 8),
    (b'{"id": 9, "cmd": ["ping"]}', "bad_request", 9),
    (b'{"id": 10, "cmd": {"name": "ping"}}', "bad_request", 10),
    (b'{"id": 11, "cmd": "no.such.command"}', "unknown_command", 11),
    (b'{"id": 12, "cmd": "PING"}', "unknown_command", 12),
    (b'{"id": 13, "cmd": ""}', "unknown_command", 13),
    (b'{"id": 14, "cmd": "ping", "verbose": true}', "bad_argument", 14),
    (b'{"id": 15, "cmd": "messages.list", "limit": "10"}', "bad_argument", 15),
    (b'{"id": 16, "cmd": "messages.list", "limit": 0}', "bad_argument", 16),
    (b'{"id": 17, "cmd": "messages.list", "to": ["*"]}', "bad_argument", 17),
    (b'{"id": 18, "cmd": "messages.wait", "timeout": "5"}', "bad_argument", 18),
    (b'{"id": 19, "cmd": "messages.wait", "timeout": 1e9}', "bad_argument", 19),
    (b'{"id": 20, "cmd": "messages.get", "message": 1}', "bad_argument", 20),
    (b'{"id": 21, "cmd": "sessions.get", "session": "1"}', "bad_argument", 21),
    (b'{"id": 22, "cmd": "profile.load", "path": 3}', "bad_argument", 22),
    (b'{"id": 23, "cmd": "profile.load", "profile": {}, "name": "x"}', "bad_argument", 23),
    (b'{"id": 24, "cmd": "events.subscribe", "filter": "x"}', "bad_argument", 24),
    (b'{"id": 25, "cmd": "reset", "hard": true}', "bad_argument", 25),
]


@pytest.mark.parametrize("line,code,rid", BAD_LINES, ids=range(len(BAD_LINES)))
def test_bad_line_gets_an_error_and_the_connection_stays_usable(admin, line, code, rid):
    admin.send(line + b"\n")
    resp = admin.response()
    assert resp["id"] == rid, resp
    check_error(resp, code)
    if code == "invalid_json":
        assert resp["error"]["message"].startswith("the request is not valid JSON"), resp
    still_usable(admin)


def test_error_messages_say_what_is_expected(admin):
    resp = admin.call("no.such")
    assert resp["error"]["message"].startswith('unknown command "no.such" (expected one of: ping, version, stats,')
    assert admin.call("ping", verbose=1)["error"]["message"] == 'unknown argument "verbose" (expected none)'
    assert admin.call("messages.list", limit=0)["error"]["message"] == '"limit" must be a number from 1 to 100000'
    resp = admin.call("messages.list", sender="x")
    assert resp["error"]["message"] == 'unknown argument "sender" (expected one of: to, from, subject, since, limit, scope)'
    admin.send(b'{"cmd": "ping"} x\n')
    assert admin.response()["error"]["message"] == "the request is not valid JSON (at byte 17)"
    admin.send(b'{"cmd": "p\xffng"}\n')
    assert admin.response()["error"]["message"] == "the request is not valid JSON (not UTF-8)"


def test_crlf_blank_lines_and_blanks_around_a_request(admin):
    admin.send(b'\n\r\n   \n\t\n{"id": 1, "cmd": "ping"}\r\n  {"id": 2, "cmd": "ping"}  \n')
    assert admin.response()["id"] == 1
    assert admin.response()["id"] == 2


def test_line_over_the_limit(admin):
    # A line over 8 MiB is answered as soon as the limit is passed, before its newline arrives.
    admin.send(b'{"id": 1, "cmd": "ping", "pad": "' + b"x" * (LINE_MAX + 10))
    resp = admin.response(timeout=60)
    assert resp["id"] is None
    assert resp["error"] == {"code": "line_too_long", "message": f"a request line is at most {LINE_MAX} bytes"}
    # The rest of that line is skipped, up to its newline; the next line is a request again.
    admin.send(b"y" * 1_000_000 + b'"}\n')
    still_usable(admin)
    # Over the limit in a single write, with its newline.
    admin.send(b'{"id": 2, "pad": "' + b"z" * (LINE_MAX + 1) + b'"}\n{"id": 3, "cmd": "ping"}\n')
    check_error(admin.response(timeout=60), "line_too_long")
    assert admin.response(timeout=60) == {"id": 3, "ok": True, "pong": True}


def test_line_at_the_limit_is_a_request(admin):
    head, tail = b'{"id": 4, "cmd": "ping", "pad": "', b'"}'
    line = head + b"x" * (LINE_MAX - len(head) - len(tail)) + tail
    assert len(line) == LINE_MAX
    admin.send(line + b"\n")
    resp = admin.response(timeout=60)
    assert resp["id"] == 4 and resp["error"]["code"] == "bad_argument", resp  # parsed: "pad" is unknown
    still_usable(admin)


def test_a_large_inline_profile_loads(admin):
    # 26 rules of 256 patterns of ~500 bytes: a line over 3 MiB, within the 4 MiB a profile may have.
    rules = [{"when": {"stage": "rcpt", "rcpt": [f"r{i}-{j}-{'x' * 480}@example.org" for j in range(256)]},
              "do": {"reply": "550 5.1.1 No"}} for i in range(26)]
    profile = {"name": "big", "rules": rules}
    assert 3 * 1024 * 1024 < len(json.dumps(profile)) < 4 * 1024 * 1024
    resp = admin.ok("profile.load", read_timeout=60, profile=profile)
    assert (resp["name"], resp["rules"]) == ("big", 26)
    assert admin.ok("profile.get", read_timeout=60)["profile"] == profile


def test_many_requests_in_one_write_are_answered_in_order(admin_srv, admin):
    with admin_srv.smtp(helo="pipe.example") as client:
        client.sendmail("a@example.org", ["b@example.org"], b"Subject: pipelined\r\n\r\nx\r\n")
    msg_id = admin.ok("messages.list")["messages"][0]["id"]
    kinds = [
        ({"cmd": "ping"}, lambda r: r["pong"] is True),
        ({"cmd": "version"}, lambda r: "libuv" in r),
        ({"cmd": "stats"}, lambda r: r["messages"]["accepted"] == 1),
        ({"cmd": "messages.list"}, lambda r: r["count"] == 1),
        ({"cmd": "messages.get", "message": msg_id}, lambda r: r["message"]["id"] == msg_id),
        ({"cmd": "messages.wait", "to": "b@*", "timeout": 5}, lambda r: r["message"]["id"] == msg_id),
        ({"cmd": "messages.wait", "to": "none@*", "timeout": 0}, lambda r: r["error"]["code"] == "timeout"),
        ({"cmd": "profile.get"}, lambda r: r["rules"] == 0),
        ({"cmd": "sessions.list"}, lambda r: "live" in r),
        ({"cmd": "nope"}, lambda r: r["error"]["code"] == "unknown_command"),
    ]
    n = 2000
    lines = []
    for i in range(n):
        req, _ = kinds[i % len(kinds)]
        lines.append(json.dumps({"id": i, **req}).encode())
    admin.send(b"\n".join(lines) + b"\n")
    for i in range(n):
        resp = admin.response(timeout=60)
        assert resp["id"] == i, f"response {i} out of order: {resp!r}"
        assert kinds[i % len(kinds)][1](resp), resp


# -- half-open and silent connections --------------------------------------------------------------------------


def read_to_eof(sock, timeout=20.0):
    sock.settimeout(timeout)
    data = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        chunk = sock.recv(1 << 20)
        if not chunk:
            return data
        data += chunk
    raise AssertionError(f"the server did not close within {timeout}s; got {data[-200:]!r}")


def test_half_closed_client_gets_every_answer_then_eof(admin_srv, admin):
    # shutdown(SHUT_WR) after the requests, as `nc -N` does: a pending messages.wait is still answered, so are
    # the requests queued behind it, and a last line without its newline counts.
    admin.send(b'{"id": 1, "cmd": "ping"}\n'
               b'{"id": 2, "cmd": "messages.wait", "to": "half@*", "timeout": 30}\n'
               b'{"id": 3, "cmd": "messages.list"}\n'
               b'{"id": 4, "cmd": "ping"}')
    admin.sock.shutdown(socket.SHUT_WR)
    assert admin.response()["id"] == 1
    with pytest.raises(TimeoutError):
        admin.read_line(timeout=0.5)  # the wait is pending
    with admin_srv.smtp(helo="half.example") as client:
        client.sendmail("a@example.org", ["half@example.org"], b"Subject: half\r\n\r\nx\r\n")
    assert admin.response()["message"]["recipients"] == ["half@example.org"]
    assert admin.response()["count"] == 1
    assert admin.response() == {"id": 4, "ok": True, "pong": True}
    assert read_to_eof(admin.sock) == b""


def test_half_closed_client_gets_a_large_response_whole(admin_srv, admin):
    n = 100_000
    admin.send(b'{"id": 0, "cmd": "ping"}\n' * n)
    admin.sock.shutdown(socket.SHUT_WR)
    time.sleep(0.5)  # the responses queue up on the server before we read
    data = read_to_eof(admin.sock, timeout=60)
    assert data == b'{"id":0,"ok":true,"pong":true}\n' * n


def test_silent_and_partial_connections_do_not_disturb_the_server(admin_srv, admin_transport):
    unix = admin_transport == "unix"
    idle = [admin_srv.admin(unix=unix) for _ in range(20)]
    partial = [admin_srv.admin(unix=unix) for _ in range(20)]
    try:
        for i, c in enumerate(partial):
            c.send(b'{"id": 1, "cmd": "pi' if i % 2 else b"x" * 100_000)
        with admin_srv.admin(unix=unix) as other:
            assert other.ok("ping")["pong"] is True
            with admin_srv.smtp(helo="busy.example") as client:
                client.sendmail("a@example.org", ["b@example.org"], b"Subject: s\r\n\r\nx\r\n")
            assert other.ok("messages.wait", to="b@*", timeout=5)["message"]["recipients"] == ["b@example.org"]
        # The partial lines are completed late: they are requests like any other.
        for c in partial[1::2]:
            c.send(b'ng"}\n')
            assert c.response() == {"id": 1, "ok": True, "pong": True}
    finally:
        for c in idle + partial:
            c.close()
    with admin_srv.admin(unix=unix) as other:
        assert other.ok("ping")["pong"] is True


def test_too_many_requests_behind_a_wait_drop_the_client(admin_srv, admin):
    admin.send_obj({"id": 1, "cmd": "messages.wait", "to": "never@*", "timeout": 60})
    ping = b'{"cmd": "ping"}\n'
    with pytest.raises((ConnectionError, BrokenPipeError)):
        for _ in range(200):  # 9.6 MiB: more than the 8 MiB (+ one read) a waiting client may queue
            admin.send(ping * 3000)
        admin.read_line(timeout=20)
    admin_srv.wait_for_log(r"admin: closing a client: too many requests queued behind messages.wait")
    with admin_srv.admin() as other:
        assert other.ok("ping")["pong"] is True


def test_client_gone_while_waiting_or_reset(admin_srv, admin_transport):
    unix = admin_transport == "unix"
    for how in ("close", "reset"):
        c = admin_srv.admin(unix=unix)
        c.send_obj({"id": 1, "cmd": "messages.wait", "to": f"{how}@*", "timeout": 30})
        c.send_obj({"id": 2, "cmd": "ping"})
        time.sleep(0.2)
        if how == "reset" and not unix:
            c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        c.close()
        # The message the wait was for arrives after its client went away.
        with admin_srv.smtp(helo="gone.example") as client:
            client.sendmail("a@example.org", [f"{how}@example.org"], b"Subject: s\r\n\r\nx\r\n")
    with admin_srv.admin(unix=unix) as other:
        assert other.ok("messages.list")["count"] == 2


# -- the token ----------------------------------------------------------------------------------------------------


def test_admin_token(short_tmp, server_factory, admin_transport):
    srv = server_factory("--admin", f"unix:{short_tmp}/admin.sock", "--admin-token", "s3cret")
    with srv.admin(unix=admin_transport == "unix") as admin:
        for req in ({"id": 1, "cmd": "ping"}, {"id": 2, "cmd": "ping", "token": "wrong"},
                    {"id": 3, "cmd": "ping", "token": ""}, {"id": 4, "cmd": "ping", "token": 123},
                    {"id": 5, "cmd": "ping", "token": "S3CRET"}, {"id": 6, "cmd": "no.such"},
                    {"id": 7, "cmd": "reset"}, {"id": 8, "cmd": "messages.list", "bogus": 1}):
            resp = admin.request(req)
            assert resp["id"] == req["id"]
            assert resp["error"] == {"code": "unauthorized",
                                     "message": 'this admin socket needs "token" in every request (--admin-token)'}
        # Framing errors come first: there is no request to authorize.
        admin.send(b"garbage\n")
        check_error(admin.response(), "invalid_json")
        assert admin.request({"id": 9, "cmd": "ping", "token": "s3cret"}) == {"id": 9, "ok": True, "pong": True}
        # Every request needs it, not only the first one on a connection.
        check_error(admin.request({"id": 10, "cmd": "ping"}), "unauthorized")
        # The token is not an argument: commands that take none accept it.
        admin.token = "s3cret"
        assert admin.ok("stats")["messages"]["accepted"] == 0
        check_error(admin.call("ping", verbose=1), "bad_argument")
    assert "s3cret" not in srv.log(), "the token must not be logged"


# -- remote addresses -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("address,host", [("0.0.0.0:0", "0.0.0.0"), ("[::]:0", "::"), ("192.0.2.1:0", "192.0.2.1")])
def test_non_loopback_admin_address_needs_admin_remote(tmp_path, address, host):
    srv = Server(tmp_path / "remote", args=["--admin", address])
    with pytest.raises(AssertionError, match="exited with 2 before listening"):
        srv.start()
    srv.wait()
    # A usage error, found while reading the command line: no listener of any kind was opened.
    assert (f"smtpfault: --admin {host} is not a loopback address: add --admin-remote to allow it (and set "
            "--admin-token)") in srv.log()
    assert "listening" not in srv.log() and "ready" not in srv.log()


def test_admin_remote_without_token_warns(server_factory):
    # ::ffff:127.0.0.1 is loopback in fact, but not to the server's check: the remote path without exposing
    # a port beyond this machine.
    srv = server_factory("--admin", "[::ffff:127.0.0.1]:0", "--admin-remote")
    # The ports file names the first TCP admin listener only (the suite's 127.0.0.1:0); the log names both.
    (port,) = srv.wait_for_log(r"listening for admin on \[::ffff:127.0.0.1\]:(\d+)")
    srv.wait_for_log(rf"warn: admin socket on \[::ffff:127.0.0.1\]:{port} without --admin-token: anyone who "
                     r"can reach it controls the server")
    assert srv.log().count("without --admin-token") == 1  # not for the loopback one
    with AdminClient(("::ffff:127.0.0.1", int(port))) as admin:
        assert admin.ok("ping")["pong"] is True


def test_admin_remote_with_token_does_not_warn(server_factory):
    srv = server_factory("--admin", "[::ffff:127.0.0.1]:0", "--admin-remote", "--admin-token", "t")
    (port,) = srv.wait_for_log(r"listening for admin on \[::ffff:127.0.0.1\]:(\d+)")
    with AdminClient(("::ffff:127.0.0.1", int(port)), token="t") as admin:
        assert admin.ok("ping")["pong"] is True
    assert "without --admin-token" not in srv.log()
