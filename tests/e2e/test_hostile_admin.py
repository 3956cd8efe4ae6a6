"""Hostile clients of the admin socket: cost and memory before the token, the token's own comparison,
confined profile paths, output bounds, UTF-8 in what the server sends.

Timing checks are "answered within N seconds" with N far above what the server needs on a loaded two-core
machine under ASan; memory checks read the server's VmHWM and VmRSS from /proc with generous thresholds.
"""

import contextlib
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
        # A connection that showed the token once may send long lines; each request still needs it.
        assert admin.request({"id": 1, "cmd": "ping", "token": TOKEN})["pong"] is True
        admin.send(many_keys_line(150_000, ',"k149999":2'))
        # The loop is not stalled meanwhile: SMTP still greets.
        assert smtp_greets(srv, ANSWER_S)
        check_error(admin.response(timeout=ANSWER_S), "unauthorized")
    with srv.admin() as admin:
        admin.send(many_keys_line(150_000))
        assert smtp_greets(srv, ANSWER_S)
        check_error(admin.response(timeout=ANSWER_S), "line_too_long")


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


# -- what a client may make the server hold before it shows the token -----------------------------------------

PRETOKEN_LINE_MAX = 65536
CLIENTS_MAX = 64
PARTIAL_LINE_IDLE_S = 10


def measured_env():
    """The server's environment for a memory measurement: under ASan, freed blocks are not held back for
    reuse checks (the quarantine would count up to 256 MiB of freed memory in the peak)."""
    from conftest import server_env

    asan = server_env().get("ASAN_OPTIONS", "")
    return {"ASAN_OPTIONS": (asan + ":" if asan else "") + "quarantine_size_mb=0"}


MEASURED_ENV = measured_env()


def vm(pid, field):
    """VmRSS or VmHWM of pid in MiB."""
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def send_all_or_reset(sock, data):
    """Send data; the server may stop listening first (then the peer resets): both are fine here."""
    try:
        sock.sendall(data)
    except OSError:
        pass


def last_error_then_closed(admin, code, timeout=ANSWER_S):
    """The next line is an error with code (id null) and then the server closes the connection."""
    resp = admin.response(timeout=timeout)
    assert resp["id"] is None, resp
    err = check_error(resp, code)
    with pytest.raises(ConnectionError):
        admin.read_line(timeout=timeout)
    return err


def test_a_long_line_before_the_token_is_refused_and_closed(server_factory):
    srv = server_factory("--admin-token", TOKEN)
    with srv.admin() as admin:
        admin.send(b'{"cmd":"ping","pad":"' + b"x" * (PRETOKEN_LINE_MAX + 40_000))
        err = last_error_then_closed(admin, "line_too_long")
        assert f"at most {PRETOKEN_LINE_MAX} bytes" in err["message"], err


def test_a_long_line_is_allowed_with_the_token_in_front_or_after_a_token_request(server_factory):
    srv = server_factory("--admin-token", TOKEN)
    pad = "x" * (PRETOKEN_LINE_MAX * 3)
    with srv.admin() as admin:
        admin.send(json.dumps({"id": 1, "token": TOKEN, "cmd": "ping", "pad": pad}).encode() + b"\n")
        check_error(admin.response(), "bad_argument")
        # Shown once, the token lets later long lines through wherever they carry it.
        admin.send(json.dumps({"id": 2, "cmd": "ping", "pad": pad, "token": TOKEN}).encode() + b"\n")
        check_error(admin.response(), "bad_argument")
    with srv.admin() as admin:
        assert admin.request({"id": 3, "cmd": "ping", "token": TOKEN})["pong"] is True
        admin.send(json.dumps({"id": 4, "cmd": "ping", "pad": pad, "token": TOKEN}).encode() + b"\n")
        check_error(admin.response(), "bad_argument")
    with srv.admin() as admin:
        admin.send(json.dumps({"id": 5, "cmd": "ping", "pad": pad, "token": TOKEN}).encode() + b"\n")
        last_error_then_closed(admin, "line_too_long")


def test_strangers_cannot_make_the_server_hold_or_parse_much(server_factory):
    srv = server_factory("--admin-token", TOKEN, env=MEASURED_ENV)
    with srv.admin() as admin:
        assert admin.ok("ping", token=TOKEN)["pong"] is True
    hwm = vm(srv.pid, "VmHWM")
    # 4 million array items in one 8 MiB line: parsed, that was over 300 MB.
    items = b"[" + b"1," * (4 * 1024 * 1024 - 8) + b"1]"
    with srv.admin() as admin:
        send_all_or_reset(admin.sock, b'{"cmd":"ping","x":' + items + b"}\n")
    # 40 connections that each park almost 8 MiB of a line without its newline.
    conns = [srv.admin() for _ in range(40)]
    for c in conns:
        send_all_or_reset(c.sock, b'{"cmd":"ping","pad":"' + b"y" * (8 * 1024 * 1024 - 100))
    with srv.admin() as admin:
        assert admin.ok("ping", token=TOKEN)["pong"] is True
    grew = vm(srv.pid, "VmHWM") - hwm
    for c in conns:
        c.close()
    print(f"VmHWM grew by {grew:.1f} MiB")
    assert grew < 64, f"the server's peak memory grew by {grew:.0f} MiB"


@contextlib.contextmanager
def admin_clients(server, n, cmd, key):
    """n admin connections, each of which has run cmd (whose response holds key: true); closed after."""
    conns = [server.admin() for _ in range(n)]
    try:
        for c in conns:
            assert c.ok(cmd)[key] is True
        yield conns
    finally:
        for c in conns:
            c.close()


def test_admin_connections_are_capped(server):
    with admin_clients(server, CLIENTS_MAX, "ping", "pong") as conns:
        with server.admin() as extra:
            err = last_error_then_closed(extra, "too_many_clients")
            assert f"at most {CLIENTS_MAX} connections" in err["message"], err
        conns.pop().close()

        def another_fits():
            with server.admin() as again:
                try:
                    return again.request({"id": 1, "cmd": "ping"}).get("pong") is True
                except ConnectionError:
                    return False

        poll(another_fits, ANSWER_S, interval=0.1, message="a connection once one is closed")


def test_a_partial_line_that_stops_growing_is_dropped(server):
    with server.admin() as quiet, server.admin() as partial:
        partial.send(b'{"cmd": "pi')
        started = time.monotonic()
        err = last_error_then_closed(partial, "timeout", timeout=PARTIAL_LINE_IDLE_S + ANSWER_S)
        assert time.monotonic() - started >= PARTIAL_LINE_IDLE_S - 1
        assert f"no byte for {PARTIAL_LINE_IDLE_S} s" in err["message"], err
        # A connection that sends nothing costs nothing, and is kept.
        assert quiet.ok("ping")["pong"] is True


# -- output: what clients that do not read can make the server hold ---------------------------------------------

SUBSCRIBERS_MAX = 16


def test_subscribers_are_capped(server):
    with admin_clients(server, SUBSCRIBERS_MAX, "events.subscribe", "subscribed") as subs:
        with server.admin() as extra:
            err = extra.error("events.subscribe", "too_many_subscribers")
            assert f"at most {SUBSCRIBERS_MAX} clients" in err["error"]["message"], err
            assert extra.ok("ping")["pong"] is True  # the connection stays usable
            subs.pop().close()

            def subscribed_again():
                # The server learns that a subscriber left when an event cannot be written to it.
                server.connect().close()
                return extra.call("events.subscribe")["ok"]

            poll(subscribed_again, ANSWER_S, interval=0.1, message="a subscription once a subscriber left")


def test_subscribers_that_do_not_read_cost_what_the_bound_says(server_factory):
    server = server_factory(env=MEASURED_ENV)
    # Events are small lines: their write bookkeeping used to be left out, so that a 16 MiB bound held 36.
    subs = [server.admin(rcvbuf=4096) for _ in range(8)]
    for sub in subs:
        assert sub.ok("events.subscribe")["subscribed"] is True
    hwm = vm(server.pid, "VmHWM")
    noop = b"NOOP " + b"n" * 400 + b"\r\n"
    deadline = time.monotonic() + 120
    while server.log().count("it does not read its responses") < len(subs):
        assert time.monotonic() < deadline, "the subscribers that do not read were not dropped"
        with server.connect() as client:
            client.reply()
            client.send(noop * 2000)
            client.replies(2000)
    grew = vm(server.pid, "VmHWM") - hwm
    for sub in subs:
        sub.close()
    print(f"VmHWM grew by {grew:.1f} MiB for {len(subs)} subscribers")
    assert grew < len(subs) * 16 * 2, f"the server's peak memory grew by {grew:.0f} MiB"


def send_big_message(server, size):
    """One message of about size bytes of text lines, by a raw SMTP client; its id."""
    line = b"x" * 76 + b"\r\n"
    with server.connect(timeout=60) as client:
        client.reply()
        client.send(b"EHLO big.example\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n")
        client.replies(4)
        client.send(b"Subject: big\r\n\r\n" + line * (size // len(line)) + b".\r\n")
        assert client.reply().code == 250
    with server.admin() as admin:
        return admin.ok("messages.list")["messages"][-1]["id"]


def read_whole_response(admin, timeout=120):
    resp = admin.response(timeout=timeout)
    assert resp["ok"] is True, resp.get("error")
    return resp


def test_large_responses_to_clients_that_do_not_read_are_bounded_in_all(server):
    msg = send_big_message(server, 34 * 1024 * 1024)
    with server.admin(rcvbuf=4096) as slow, server.admin() as second:
        slow.send_obj({"id": 1, "cmd": "messages.get", "message": msg, "raw": True})
        # The first is queued (about 80 MB); a second one would double that while the first is not read.
        resp = second.call("messages.get", message=msg, raw=True, read_timeout=120)
        assert resp["ok"] is False, "a second large response was queued while the first was not read"
        err = check_error(resp, "unavailable")
        assert "retry later" in err["message"], err
        slow.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        assert len(read_whole_response(slow)["raw_base64"]) > 34 * 1024 * 1024
        # Once read, the next one is served.
        second.send_obj({"id": 2, "cmd": "messages.get", "message": msg, "raw": True})
        assert read_whole_response(second)["id"] == 2


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


# -- profile.load reads files in the profile directories only ----------------------------------------------------


def test_profile_paths_are_confined(short_tmp, server_factory):
    profiles, allowed, outside = short_tmp / "profiles", short_tmp / "allowed", short_tmp / "outside"
    for d in (profiles, allowed, outside):
        d.mkdir()
    (profiles / "mine.json").write_text('{"name": "mine"}')
    (allowed / "extra.json").write_text('{"name": "extra"}')
    secret = outside / "secret.json"
    secret.write_text('{"name": "secret-content-1234"}')
    (profiles / "link.json").symlink_to(secret)
    srv = server_factory("--admin-allow-paths", f"{allowed}:{short_tmp}/nonexistent",
                         env={"SMTPFAULT_PROFILES": str(profiles)})
    with srv.admin() as admin:
        for path in ("/etc/passwd", "/proc/self/environ", str(secret), f"{profiles}/../outside/secret.json",
                     str(profiles / "link.json"), f"{outside}/absent.json", "/nonexistent/x.json", "relative.json"):
            for cmd in ("profile.load", "profile.validate"):
                resp = admin.call(cmd, path=path)
                err = check_error(resp, "forbidden")
                assert "secret-content" not in json.dumps(resp) and "root:" not in json.dumps(resp), resp
                assert "--admin-allow-paths" in err["message"], err
        assert admin.ok("profile.load", path=str(profiles / "mine.json"))["name"] == "mine"
        assert admin.ok("profile.load", path=f"{allowed}/../allowed/extra.json")["name"] == "extra"
        assert "secret-content" not in json.dumps(admin.ok("profile.get"))
        # A file that is not there is reported as such only in an allowed directory.
        resp = admin.call("profile.load", path=f"{allowed}/absent.json")
        check_error(resp, "invalid_profile")
        assert resp["errors"] == [f"{allowed}/absent.json: cannot read: no such file or directory"]


def test_profile_paths_from_the_environment(short_tmp, server_factory):
    (short_tmp / "p.json").write_text('{"name": "from-env-dir"}')
    srv = server_factory(env={"SMTPFAULT_ADMIN_ALLOW_PATHS": str(short_tmp)})
    with srv.admin() as admin:
        assert admin.ok("profile.validate", path=str(short_tmp / "p.json"))["name"] == "from-env-dir"


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


def test_ctl_loads_a_large_profile_on_a_server_with_a_token(server_factory, tmp_path):
    from conftest import ctl

    srv = server_factory("--admin-token", TOKEN)
    rules = [{"name": f"r{i}", "comment": "c" * 400, "when": {"stage": "rcpt", "rcpt": f"x{i}@example.org"},
              "do": {"reply": "550 5.1.1 no"}} for i in range(300)]
    profile = tmp_path / "large.json"
    profile.write_text(json.dumps({"name": "large", "rules": rules}))
    assert profile.stat().st_size > 2 * PRETOKEN_LINE_MAX
    proc = ctl(srv, "--token", TOKEN, "load", profile)
    assert proc.returncode == 0, proc.stderr
    with srv.admin(token=TOKEN) as admin:
        assert admin.ok("profile.get")["name"] == "large"
