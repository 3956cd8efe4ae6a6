"""
What a red-team review of the hostile-input fixes found, one test per finding (each failed on the code it
reviewed): a profile error whose source name overran a stack buffer; descriptors that ran out although a
reserve was promised (the hang-up watch's duplicate socket, admin connections past the reserve, refused admin
connections kept open by trickling bytes); greylist triples chosen to share a hash bucket; a mechanism name
echoed raw into a reply; a stranger's refusals queued without bound.
"""

import itertools
import json
import os
import socket
import time

import pytest

from conftest import VALGRIND, AdminClient, run_binary
from harness.env import nofile_limit

TOKEN = "review-token"


def fds(srv):
    return len(os.listdir(f"/proc/{srv.pid}/fd"))


@pytest.fixture
def low_nofile():
    """Start servers with RLIMIT_NOFILE 256 (they inherit it), as `ulimit -n 256` would."""
    with nofile_limit(256):
        yield


def test_a_long_source_name_in_a_profile_error(admin_srv):
    broken = {"rules": "not a list"}
    with admin_srv.admin() as admin:
        for n in (800, 1100, 4000):
            resp = admin.call("profile.validate", profile=broken, source="s" * n)
            assert resp["error"]["code"] == "invalid_profile", resp["error"]
            assert resp["errors"][0].startswith("s" * n + ": rules: "), resp["errors"][0][-200:]
        resp = admin.call("profile.validate", profile=broken, source="s" * 5000)
        assert resp["error"]["code"] == "bad_argument" and "at most 4096 bytes" in resp["error"]["message"]
        assert admin.ok("ping")["pong"] is True


def test_a_long_path_in_a_profile_error(tmp_path):
    deep = tmp_path
    while len(str(deep)) < 850:
        deep = deep / ("d" * 100)
    deep.mkdir(parents=True)
    bad = deep / "broken.json"
    bad.write_text('{"rules": "not a list"}')
    proc = run_binary(["check", str(bad)])
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert proc.stderr.startswith(f"{bad}: rules: "), proc.stderr[-500:]


def test_waiting_sessions_leave_the_reserve_alone(server_factory, low_nofile):
    """Each session not being read holds a second descriptor (the hang-up watch): the connection limit
    counts two per connection, so the admin socket and the store keep their reserve."""
    srv = server_factory("--profile", "slow-greeting")
    (limit,) = srv.wait_for_log(r"at most (\d+) SMTP connections \(RLIMIT_NOFILE 256")
    clients = []
    try:
        for _ in range(int(limit) + 20):
            clients.append(socket.create_connection(srv.address, timeout=10))
        time.sleep(1)
        with srv.admin() as admin:
            assert admin.ok("stats")["sessions"]["live"] <= int(limit)
        assert fds(srv) < 256 - 80, f"{fds(srv)} descriptors open of 256"
    finally:
        for c in clients:
            c.close()
    assert "too many open files" not in srv.log().lower()


def test_every_admin_connection_fits_the_reserve(server_factory, low_nofile):
    srv = server_factory()
    (limit,) = srv.wait_for_log(r"at most (\d+) SMTP connections \(RLIMIT_NOFILE 256")
    # Every SMTP connection but one taken (that one sends a message through the store below).
    smtp = [socket.create_connection(srv.address, timeout=10) for _ in range(int(limit) - 1)]
    admins = []
    try:
        for c in smtp:
            c.recv(512)
        for _ in range(64):
            a = AdminClient(srv.admin_address)
            admins.append(a)
        for a in admins:
            assert a.ok("ping")["pong"] is True
        with srv.smtp(helo="after.example") as client:  # the store still gets its descriptors
            client.mail("a@example.org")
            client.rcpt("b@example.org")
            assert client.data(b"Subject: x\r\n\r\nx\r\n")[0] == 250
    finally:
        for a in admins:
            a.close()
        for c in smtp:
            c.close()
    assert "too many open files" not in srv.log().lower()


def test_refused_admin_connections_cannot_hold_descriptors(server_factory):
    srv = server_factory("--admin-token", TOKEN)
    base = fds(srv)
    socks = []
    try:
        for _ in range(150):
            socks.append(socket.create_connection(srv.admin_address, timeout=5))
        # Those past the limit are refused; keep talking to them, as if to keep them open.
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:
            for s in socks[64:]:
                try:
                    s.send(b"x")
                except OSError:
                    pass
            time.sleep(0.25)
        held = fds(srv) - base
        assert held <= 64 + 16 + 4, f"{held} admin descriptors held"
        with socket.create_connection(srv.address, timeout=5) as c:
            assert c.recv(512).startswith(b"220 ")
    finally:
        for s in socks:
            s.close()


def fnv_low_collisions(count, prefix, bits=20):
    """Recipients whose greylist keys share the low bits of an unkeyed FNV-1a (the low k bits of its
    state depend only on the low k bits of the input): count of them, each a multicollision block."""
    mask, prime = (1 << bits) - 1, 1099511628211

    def step(s, data):
        for b in data:
            s = ((s ^ b) * prime) & mask
        return s

    s = step(1469598103934665603 & mask, prefix)
    alphabet, choices = b"abcdefghijklmnopqrstuvwxyz0123456789", []
    while 2 ** len(choices) < count:
        seen = {}
        for block in itertools.product(alphabet, repeat=3):
            block = bytes(block)
            t = step(s, block)
            if t in seen:
                choices.append((seen[t], block))
                s = t
                break
            seen[t] = block
    return [b"".join(c) + b"@x" for c in itertools.islice(itertools.product(*choices), count)]


@pytest.mark.skipif(VALGRIND, reason="a complexity bound in seconds: valgrind's slowdown is not the server's")
def test_greylist_keys_chosen_to_collide_cost_no_more(server_factory):
    srv = server_factory("--profile", "greylisting-450", "--max-errors", "1000000")
    rcpts = fnv_low_collisions(65536, b"127.0.0.1\0a@x\0")
    with socket.create_connection(srv.address, timeout=60) as c:
        c.recv(512)
        c.sendall(b"EHLO flood.example\r\n")
        c.recv(4096)
        started = time.monotonic()
        for i in range(0, len(rcpts), 2000):
            batch = rcpts[i:i + 2000]
            c.sendall(b"MAIL FROM:<a@x>\r\n" + b"".join(b"RCPT TO:<" + r + b">\r\n" for r in batch) + b"RSET\r\n")
            got = b""
            while got.count(b"\r\n") < len(batch) + 2:
                got += c.recv(1 << 16)
        took = time.monotonic() - started
    with srv.admin() as admin:
        t = time.monotonic()
        admin.ok("reset")
        reset_took = time.monotonic() - t
    # Before: about 30 s for the RCPTs and 21 s for the reset (a chain walked per lookup); now a few seconds
    # at most. The bounds only tell linear from quadratic.
    assert took < 20, f"65,536 colliding recipients took {took:.1f} s"
    assert reset_took < 5, f"reset took {reset_took:.1f} s"


@pytest.mark.parametrize("mech,echo", [(b"DIGEST-MD5", b" DIGEST-MD5"), (b"PL\rAIN", b""), (b"\xc3\xa9\xff", b""),
                                       (b"\x1b[2J", b""), (b"A" * 21, b"")])
def test_an_unknown_mechanism_is_echoed_only_when_it_is_a_name(server, mech, echo):
    with socket.create_connection(server.address, timeout=10) as c:
        f = c.makefile("rb")
        f.readline()
        c.sendall(b"EHLO mech.example\r\n")
        while not f.readline().startswith(b"250 "):
            pass
        c.sendall(b"AUTH " + mech + b"\r\n")
        line = f.readline()
    assert line == b"504 5.5.4 Error: unsupported authentication mechanism" + echo + b"\r\n", line


def test_a_strangers_refusals_are_bounded(server_factory):
    """Before the token, a response echoes a short id only, and at most 64 KiB is queued for a stranger
    who does not read: an `unauthorized` of a 60 KB id, pipelined, used to queue 16 MiB per connection."""
    srv = server_factory("--admin-token", TOKEN)
    with socket.create_connection(srv.admin_address, timeout=10) as s:
        s.sendall(b'{"id": "' + b"i" * 100 + b'", "cmd": "ping"}\n{"id": "short", "cmd": "ping"}\n')
        f = s.makefile("rb")
        long_id, short_id = json.loads(f.readline()), json.loads(f.readline())
    assert long_id["id"] is None and long_id["error"]["code"] == "unauthorized"
    assert short_id["id"] == "short" and short_id["error"]["code"] == "unauthorized"
    with socket.create_connection(srv.admin_address, timeout=10) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        # Enough refusals to fill the kernel's buffers on both sides (loopback may hold megabytes) and
        # then the server's own 64 KiB: sent until the server closes on us, or 32 MiB of requests.
        batch = (b'{"id": "' + b"i" * 60 + b'", "cmd": "ping"}\n') * 1000
        try:
            for _ in range(400):
                s.sendall(batch)
        except OSError:
            pass  # closed on us: the point
    srv.wait_for_log(r"has not shown the token \(more than 64 KiB queued\)")
