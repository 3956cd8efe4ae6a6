"""Server-wide bounds against hostile or careless clients, and the files the server writes.

| item | test |
|---|---|
| SASL responses up to the AUTH line limit | test_auth_response_up_to_the_line_limit_is_decoded |
| symlinks planted in --store-dir | test_store_dir_does_not_write_through_planted_symlinks |
| symlinks planted next to --ports-file | test_ports_file_does_not_write_through_a_planted_symlink |
| SIGHUP: a graceful stop, as SIGTERM | test_sighup_drains_like_sigterm |
| SIGUSR1: counters in the log | test_sigusr1_logs_counters_and_changes_nothing |
| placeholders filled with long values | test_long_placeholder_values_reach_a_real_client_whole |
| disk full between ID.eml and ID.json | test_disk_full_at_the_envelope_leaves_no_content (and unit.store_disk) |
"""

import base64
import json
import os
import signal
import smtplib
import subprocess

import pytest

from conftest import Server, dot_stuff, make_message, transaction

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
        # the transaction in flight finishes, then the session is told the server is going
        c.cmd("RCPT TO:<b@example.org>", 250)
        c.cmd("DATA", 354)
        c.send(dot_stuff(make_message("drained", "kept")) + b".\r\n")
        c.expect(250, "queued as")
        c.expect(421, "4.3.2")
    assert server.wait() == 0
    assert not sock.exists()
    assert len(server.message_ids()) == 1


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
