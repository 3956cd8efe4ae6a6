"""Hostile clients of the admin socket: cost and memory before the token, the token's own comparison,
confined profile paths, output bounds, UTF-8 in what the server sends.

Timing checks are "answered within N seconds" with N far above what the server needs on a loaded two-core
machine under ASan; memory checks read the server's VmHWM and VmRSS from /proc with generous thresholds.
"""

import json
import socket
import time

import pytest

from conftest import check_error, poll

TOKEN = "s3cret-token"
ANSWER_S = 15.0  # a request of any shape is answered well within this, whatever it holds


def many_keys_line(n, extra=""):
    """{"cmd": "ping", "k0": 1, ..., "k<n-1>": 1<extra>} as bytes with its newline."""
    keys = ",".join(f'"k{i}":1' for i in range(n))
    return ('{"cmd":"ping",' + keys + extra + "}\n").encode()


def timed_response(admin, line, timeout=ANSWER_S):
    """Send line; (response, seconds it took)."""
    started = time.monotonic()
    admin.send(line)
    resp = admin.response(timeout=timeout)
    return resp, time.monotonic() - started


def smtp_greets(server, timeout):
    """An SMTP connection is greeted within timeout seconds (the loop is not stalled)."""
    with socket.create_connection(server.address, timeout=timeout) as s:
        s.settimeout(timeout)
        return s.recv(512).startswith(b"220")


# -- cost: no input costs more than linear time ------------------------------------------------------------


def test_many_keys_without_the_token_are_refused_at_once(server_factory):
    srv = server_factory("--admin-token", TOKEN)
    with srv.admin() as admin:
        admin.send(many_keys_line(150_000))
        # The loop is not stalled meanwhile: SMTP still greets.
        assert smtp_greets(srv, ANSWER_S)
        resp = admin.response(timeout=ANSWER_S)
    assert resp["ok"] is False and resp["error"]["code"] in ("unauthorized", "line_too_long"), resp


def test_duplicate_key_among_many_is_found_in_n_log_n(server_factory):
    srv = server_factory("--admin-token", TOKEN)
    with srv.admin(token=TOKEN) as admin:
        assert admin.ok("ping")["pong"] is True
        resp, took = timed_response(admin, many_keys_line(150_000, f',"token":"{TOKEN}","k149999":2'))
        err = check_error(resp, "bad_request")
        assert '"k149999" appears twice' in err["message"], resp
        assert took < ANSWER_S


def test_profile_with_many_duplicate_keys_compiles_in_linear_time(server):
    # Each repeated known key used to be compared with every key before it: unknown ones first.
    unknown = ",".join(f'"x{i}":1' for i in range(40_000))
    dup = unknown + "," + ",".join('"description":"x"' for _ in range(40_000))
    with server.admin() as admin:
        started = time.monotonic()
        admin.send(('{"id":1,"cmd":"profile.validate","profile":{"rules":[],' + dup + "}}\n").encode())
        assert smtp_greets(server, ANSWER_S)
        resp = admin.response(timeout=ANSWER_S)
        assert time.monotonic() - started < ANSWER_S
    check_error(resp, "invalid_profile")


# -- the token, cmd and path are whole strings ---------------------------------------------------------------


def test_token_with_a_nul_escape_is_refused(server_factory):
    srv = server_factory("--admin-token", TOKEN)
    with srv.admin() as admin:
        admin.send(('{"id":1,"cmd":"ping","token":"' + TOKEN + '\\u0000xyz"}\n').encode())
        check_error(admin.response(), "bad_request")
        admin.send(('{"id":2,"cmd":"ping","token":"' + TOKEN + '"}\n').encode())
        assert admin.response()["pong"] is True


def test_cmd_and_path_with_a_nul_escape_are_refused(server):
    with server.admin() as admin:
        admin.send(b'{"id":1,"cmd":"ping\\u0000junk"}\n')
        check_error(admin.response(), "bad_request")
        admin.send(b'{"id":2,"cmd":"profile.validate","path":"/etc/passwd\\u0000.json"}\n')
        check_error(admin.response(), "bad_request")
        assert admin.ok("ping")["pong"] is True


# -- the unix socket at start ----------------------------------------------------------------------------------


def test_unix_socket_in_use_is_refused_and_a_stale_one_replaced(short_tmp, server_factory, tmp_path):
    from pathlib import Path

    from conftest import Server

    path = short_tmp / "admin.sock"
    first = server_factory("--admin", f"unix:{path}")
    second = Server(tmp_path / "second", args=["--admin", f"unix:{path}"])
    with pytest.raises(AssertionError, match="exited with 1 before listening"):
        second.start()
    second.wait()
    assert "address already in use" in second.log().lower(), second.log()
    with first.admin(unix=True) as admin:
        assert admin.ok("ping")["pong"] is True
    # A socket file nobody answers on (its server is gone) is replaced.
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(short_tmp / "stale.sock"))
    stale.close()
    third = server_factory("--admin", f"unix:{short_tmp}/stale.sock")
    with third.admin(unix=True) as admin:
        assert admin.ok("ping")["pong"] is True
    doc = (Path(__file__).resolve().parents[2] / "docs" / "admin.md").read_text()
    assert "does not check whether another process" not in doc


# -- undefined behaviour ----------------------------------------------------------------------------------------


def test_wait_ending_after_a_large_read_is_clean(server):
    # More than 4 KiB in one read: the input buffer is given back while the wait holds the queue, and the
    # wait's end then framed an empty, freed buffer (memmove(NULL, NULL, 0) aborted the UBSan build).
    with server.admin() as admin:
        admin.send(b'{"id":1,"cmd":"messages.wait","timeout":0.2}' + b" " * 8000 + b"\n")
        check_error(admin.response(), "timeout")
        assert admin.ok("ping")["pong"] is True
    assert server.stop() == 0
    server.check_clean_exit()


# -- UTF-8 in what the server sends ------------------------------------------------------------------------------


def strict_json(raw):
    """raw bytes as JSON, refusing any byte sequence that is not UTF-8 (json.loads would raise too)."""
    return json.loads(raw.decode("utf-8", "strict"))


def test_admin_output_and_envelopes_are_utf8_whatever_the_client_sent(server):
    import base64

    client = server.connect()
    assert client.reply().code == 220
    client.send(b"EHLO h\xff\xfe.example\r\n")
    assert client.reply().code == 250
    client.send(b"AUTH PLAIN " + base64.b64encode(b"\0us\xc0er\0pw") + b"\r\n")
    client.reply()
    client.send(b"MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n")
    assert [r.code for r in client.replies(3)] == [250, 250, 354]
    client.send(b"Subject: x\r\n\r\nbody\r\n.\r\n")
    assert client.reply().code == 250
    with server.admin() as admin:
        for req in ({"id": 1, "cmd": "sessions.list"}, {"id": 2, "cmd": "messages.list"}):
            admin.send_obj(req)
            resp = strict_json(admin.read_line())
            assert resp["ok"] is True, resp
            text = json.dumps(resp, ensure_ascii=False)
            assert "h\ufffd\ufffd.example" in text, text
        sid = resp["messages"][0]["session"]
        admin.send_obj({"id": 3, "cmd": "sessions.get", "session": sid})
        session = strict_json(admin.read_line())
        assert "us\ufffder" in json.dumps(session, ensure_ascii=False), session
        admin.send_obj({"id": 4, "cmd": "messages.get", "message": resp["messages"][0]["id"]})
        assert strict_json(admin.read_line())["ok"] is True
    client.close()
    (msg_id,) = server.message_ids()
    envelope = strict_json((server.store_dir / f"{msg_id}.json").read_bytes())
    assert "h\ufffd\ufffd.example" in json.dumps(envelope, ensure_ascii=False)
