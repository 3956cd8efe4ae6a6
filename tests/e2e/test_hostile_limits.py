"""Server-wide bounds against hostile or careless clients, and the files the server writes.

| item | test |
|---|---|
| SASL responses up to the AUTH line limit | test_auth_response_up_to_the_line_limit_is_decoded |
| symlinks planted in --store-dir | test_store_dir_does_not_write_through_planted_symlinks |
| symlinks planted next to --ports-file | test_ports_file_does_not_write_through_a_planted_symlink |
| SIGHUP: a graceful stop, as SIGTERM | test_sighup_drains_like_sigterm, test_sighup_ignored_under_nohup |
| SIGUSR1: counters in the log | test_sigusr1_logs_counters_and_changes_nothing |
| placeholders filled with long values | test_long_placeholder_values_reach_a_real_client_whole |
| message content held by all sessions | test_inflight_bytes_are_bounded_server_wide |
| connections | test_max_connections_answers_421_past_the_limit, test_options_from_the_environment |
| descriptors | test_descriptors_in_reserve_for_the_admin_socket_and_the_store |
| disk full between ID.eml and ID.json | test_disk_full_at_the_envelope_leaves_no_content (and unit.store_disk) |
"""

import base64
import json
import os
import signal
import smtplib
import socket
import subprocess

import pytest

from harness.env import nofile_limit
from conftest import IO_TIMEOUT, Server, dot_stuff, make_message, poll, transaction

PRECIOUS = b"not the server's to overwrite\n"


def victim_file(tmp_path):
    victim = tmp_path / "victim"
    victim.write_bytes(PRECIOUS)
    return victim


@pytest.mark.parametrize("encoded_len", [11000, 12284])
def test_auth_response_up_to_the_line_limit_is_decoded(server, encoded_len):
    # RFC 4954 section 4: a response line may be 12288 octets with its CRLF, so 12284 base64 characters
    # at most; each such response decodes (8 KiB of decode buffer refused those over 10924 characters).
    raw = b"\0tim\0" + b"p" * (encoded_len // 4 * 3 - 5)
    response = base64.b64encode(raw).decode()
    assert len(response) == encoded_len
    with server.connect() as c:
        c.greet()
        c.cmd("AUTH PLAIN", 334)
        c.cmd(response, 235)
        c.cmd("QUIT", 221)


def test_store_dir_does_not_write_through_planted_symlinks(server, tmp_path):
    # Ids are a per-run prefix and a counter: once one is known, the next is known, and so were the
    # temporary names the files were written to. Whoever can write to the directory plants symlinks there.
    with server.connect() as c:
        c.greet()
        first = transaction(c, "a@example.org", ["b@example.org"], make_message("first", "one"))
        following = f"{first[:-8]}{int(first[-8:], 16) + 1:08X}"
        victim = victim_file(tmp_path)
        planted = [server.store_dir / f".{following}.{ext}.tmp" for ext in ("eml", "json")]
        for link in planted:
            os.symlink(victim, link)
        second = transaction(c, "a@example.org", ["b@example.org"], make_message("second", "two"))
        c.cmd("QUIT", 221)
    assert second == following
    assert victim.read_bytes() == PRECIOUS
    assert all(link.is_symlink() and os.readlink(link) == str(victim) for link in planted)
    assert b"two" in server.message(second).raw
    assert not (server.store_dir / f"{second}.eml").is_symlink()


def test_ports_file_does_not_write_through_a_planted_symlink(tmp_path):
    victim = victim_file(tmp_path)
    srv = Server(tmp_path / "srv")
    os.symlink(victim, srv.ports_file.parent / f".{srv.ports_file.name}.tmp")
    try:
        srv.start()
        assert srv.port > 0
        assert not srv.ports_file.is_symlink()
        assert victim.read_bytes() == PRECIOUS
        srv.stop()
        srv.check_clean_exit()
    finally:
        srv.kill()


@pytest.fixture
def tiny_store(tmp_path):
    """A 64 KiB tmpfs mounted where server_factory's first server keeps its --store-dir (needs root)."""
    store = tmp_path / "server0" / "store"
    store.mkdir(parents=True)
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(store)],
                                           capture_output=True).returncode != 0:
        pytest.skip("mounting a tmpfs needs root (unit.store_disk covers this with a fake file layer)")
    yield store
    subprocess.run(["umount", "-l", str(store)], check=True)


def test_disk_full_at_the_envelope_leaves_no_content(tiny_store, server_factory):
    server = server_factory()
    assert server.store_dir == tiny_store
    # 15 pages and a bit: the content takes all 16 pages of the tmpfs, the envelope finds none.
    big = b"Subject: big\r\n\r\n" + (b"x" * 78 + b"\r\n") * 770
    assert 15 * 4096 < len(big) <= 16 * 4096
    with server.connect() as c:
        c.greet()
        c.cmd("MAIL FROM:<a@example.org>", 250)
        c.cmd("RCPT TO:<b@example.org>", 250)
        c.cmd("DATA", 354)
        c.send(big + b".\r\n")
        c.expect(451, "could not store the message")
        assert [p.name for p in tiny_store.iterdir()] == []
        # the space is free again: a small message is kept
        msg_id = transaction(c, "a@example.org", ["b@example.org"], make_message("small", "fits"))
        c.cmd("QUIT", 221)
    assert sorted(p.name for p in tiny_store.iterdir()) == [f"{msg_id}.eml", f"{msg_id}.json"]


def test_sighup_drains_like_sigterm(short_tmp, server_factory):
    sock = short_tmp / "admin.sock"
    server = server_factory("--admin", f"unix:{sock}", "--drain-timeout", "30")
    assert sock.exists()
    with server.connect() as c:
        c.greet()
        c.cmd("MAIL FROM:<a@example.org>", 250)
        server.signal(signal.SIGHUP)
        server.wait_for_log(r"received SIGHUP: stopping")
        # nothing listens there any more: the file goes as the listeners close, just after the log line
        poll(lambda: not server.ports_file.exists(), 10, message="the ports file to be removed")
        # the transaction in flight finishes, then the session is told the server is going
        c.cmd("RCPT TO:<b@example.org>", 250)
        c.cmd("DATA", 354)
        c.send(dot_stuff(make_message("drained", "kept")) + b".\r\n")
        c.expect(250, "queued as")
        c.expect(421, "4.3.2")
    assert server.wait() == 0
    assert not sock.exists()
    assert not server.ports_file.exists()
    assert len(server.message_ids()) == 1


def test_sighup_ignored_under_nohup(server_factory):
    # nohup starts a program with SIGHUP ignored, and an ignored signal stays ignored across exec
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        server = server_factory()
    finally:
        signal.signal(signal.SIGHUP, previous)
    server.signal(signal.SIGHUP)
    server.signal(signal.SIGUSR1)  # logged after the SIGHUP, had there been anything to log
    server.wait_for_log(r"received SIGUSR1")
    assert "SIGHUP" not in server.log()
    with server.connect() as c:
        c.greet()
        c.cmd("QUIT", 221)


def test_sigusr1_logs_counters_and_changes_nothing(server):
    with server.connect() as c:
        c.greet()
        transaction(c, "a@example.org", ["b@example.org"], make_message("before", "one"))
        server.signal(signal.SIGUSR1)
        server.wait_for_log(r"received SIGUSR1: 1 connection live, 1 in total; 1 messages accepted, 1 kept")
        transaction(c, "a@example.org", ["b@example.org"], make_message("after", "two"))
        c.cmd("QUIT", 221)
    assert server.running()


def test_long_placeholder_values_reach_a_real_client_whole(server_factory, tmp_path):
    # 20 lines of a 500-character EHLO name: 10 KB of reply, more than the 4 KiB it was once cut to (mid-line,
    # without CRLF: the client waited for the rest), and a last line of 1000 characters, folded.
    lines = ["550-5.7.1 {helo}"] * 20 + ["550 5.7.1 {helo}{helo}"]
    profile = tmp_path / "long.json"
    profile.write_text(json.dumps({"rules": [{"when": {"stage": "mail"}, "do": {"reply": lines}}]}))
    server = server_factory("--profile", str(profile))
    name = "h" * 500
    with smtplib.SMTP(server.host, server.port, local_hostname=name, timeout=20) as client:
        code, text = client.ehlo()
        assert code == 250
        code, text = client.mail("a@example.org")
        assert code == 550
        assert text.count(b"h") == 22 * 500
        assert all(len(line) <= 510 for line in text.split(b"\n"))
        assert client.noop()[0] == 250


def stats(server):
    with server.admin() as admin:
        return admin.ok("stats")


def inflight(server):
    return stats(server)["capacity"]["inflight_bytes"]


def open_transaction(client, sender):
    client.cmd(f"MAIL FROM:<{sender}>", 250)
    client.cmd("RCPT TO:<r@example.org>", 250)


def hold_content(server, client, content):
    """client starts a message and sends content, not its final dot; returns once the server holds it all."""
    open_transaction(client, "a@example.org")
    client.cmd("DATA", 354)
    client.send(content)
    poll(lambda: inflight(server) == len(content), IO_TIMEOUT,
         message=lambda: f"inflight_bytes {inflight(server)}, not {len(content)}")


def test_inflight_bytes_are_bounded_server_wide(server_factory):
    server = server_factory("--max-inflight-bytes", "64K")
    chunk = b"x" * 998 + b"\r\n"
    with server.connect() as a, server.connect() as b:
        a.greet()
        b.greet()
        hold_content(server, a, chunk * 60)  # 60,000 bytes of a message a has not finished
        # b announces more than is left: refused at MAIL (RFC 1870); without SIZE it starts, and its content
        # past the bound is read and dropped, answered after the final dot
        b.cmd("MAIL FROM:<b@example.org> SIZE=10000", 452, "4.3.1")
        open_transaction(b, "b@example.org")
        b.cmd("DATA", 354)
        b.send(chunk * 10 + b".\r\n")
        b.expect(452, "insufficient system storage")
        # the same for a BDAT chunk (RFC 3030: read in full, then answered)
        open_transaction(b, "b@example.org")
        b.send(b"BDAT 10000 LAST\r\n" + b"z" * 10000)
        b.expect(452, "insufficient system storage")
        b.cmd("NOOP", 250)
        # a finishes: its content is the store's now, no longer in flight
        a.send(b".\r\n")
        a.expect(250, "queued as")
        assert inflight(server) == 0
        msg_id = transaction(b, "b@example.org", ["r@example.org"], make_message("after", "room again"))
        a.cmd("QUIT", 221)
        b.cmd("QUIT", 221)
    assert len(server.message(msg_id).raw) < 1000
    assert len(server.message_ids()) == 2


def test_inflight_full_refuses_mail_and_data(server_factory):
    server = server_factory("--max-inflight-bytes", "1K", "--max-message-size", "4K")
    with server.connect() as a, server.connect() as b:
        a.greet()
        b.greet()
        open_transaction(b, "b@example.org")
        hold_content(server, a, (b"y" * 510 + b"\r\n") * 2)  # all of the 1K
        b.cmd("DATA", 452, "insufficient system storage")
        b.cmd("RSET", 250)
        b.cmd("MAIL FROM:<b@example.org>", 452, "insufficient system storage")
        a.send(b".\r\n")
        a.expect(250)
        b.cmd("MAIL FROM:<b@example.org>", 250)
        b.cmd("QUIT", 221)


def test_max_connections_answers_421_past_the_limit(server_factory):
    server = server_factory("--max-connections", "3")
    clients = [server.connect() for _ in range(3)]
    try:
        for c in clients:
            c.greet()
        with server.connect() as extra:
            assert extra.read_until_closed() == b"421 4.7.0 localhost Error: too many connections, try again later\r\n"
        assert stats(server)["capacity"]["refused"] == 1
        # the admin socket is not an SMTP connection: it works at the limit
        clients.pop().cmd("QUIT", 221)
        server.wait_for_log(r"close client quit")
        poll(lambda: stats(server)["sessions"]["live"] == 2, IO_TIMEOUT, message="a free slot")
        with server.connect() as again:
            again.greet()
            again.cmd("QUIT", 221)
    finally:
        for c in clients:
            c.close()


def test_options_from_the_environment(server_factory):
    server = server_factory(env={"SMTPFAULT_MAX_CONNECTIONS": "1", "SMTPFAULT_MAX_INFLIGHT_BYTES": "2K"})
    st = stats(server)
    assert st["capacity"]["connections"] == 1 and st["capacity"]["max_inflight_bytes"] == 2048
    with server.connect() as c:
        c.greet()
        with server.connect() as extra:
            assert extra.read_until_closed().startswith(b"421 4.7.0 ")
        c.cmd("MAIL FROM:<a@example.org> SIZE=2049", 452, "4.3.1")
        c.cmd("MAIL FROM:<a@example.org> SIZE=2048", 250)
        c.cmd("QUIT", 221)


def test_descriptors_in_reserve_for_the_admin_socket_and_the_store(server_factory):
    # The server runs with `ulimit -n 256`; SMTP clients try to take 300 connections.
    with nofile_limit(256):
        server = server_factory()
    limit = stats(server)["capacity"]["connections"]
    # Half of what is left once the reserve is kept: a waiting connection holds two descriptors.
    assert 40 < limit < 128
    server.wait_for_log(rf"at most {limit} SMTP connections \(RLIMIT_NOFILE 256")
    held, greeted, refused = [], [], 0
    try:
        for _ in range(300):
            c = server.connect()
            held.append(c)
            first = c.reply()
            if first.code == 220:
                greeted.append(c)
            else:
                assert first.code == 421 and "too many connections" in first.text
                refused += 1
        assert len(greeted) == limit and refused == 300 - limit
        # the admin socket answers, and a message is still written to --store-dir
        assert stats(server)["capacity"]["refused"] == refused
        c = greeted[0]
        c.cmd("EHLO client.example", 250)
        msg_id = transaction(c, "a@example.org", ["b@example.org"], make_message("at the limit", "stored"))
        assert b"stored" in server.message(msg_id).raw
    finally:
        for c in held:
            c.close()
