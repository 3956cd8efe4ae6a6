"""SmtpFault against the real binary: start and connect, every state command on the server's own listeners,
each error type (with its admin code), and smtplib sending with verification against `ca`."""

import os
import pathlib
import socket
import ssl
import tempfile

import pytest

from conftest import send_mail
from smtpfault import SmtpFault, SmtpFaultError

RETRY_ONCE = {"name": "retry-once", "rules": [
    {"when": {"stage": "rcpt", "times": 1}, "do": {"reply": "451 4.3.0 Try again later"}}]}


@pytest.fixture
def server(smtpfault):
    """The session's server, reset after the test (these tests change its own state, not a scope's)."""
    yield smtpfault
    smtpfault.reset()


def test_start_gives_a_server_on_free_ports(smtpfault):
    assert smtpfault.ping() is True
    assert smtpfault.version()["version"]
    ports = {smtpfault.smtp.port, smtpfault.submission.port, smtpfault.smtps.port}
    assert len(ports) == 3 and 0 not in ports
    assert smtpfault.log_path and pathlib.Path(smtpfault.log_path).exists()


def test_connect_to_a_running_server(smtpfault):
    with SmtpFault.connect(smtpfault.admin) as other:
        assert other.ping() is True
        assert other.process is None
        assert other.smtp == smtpfault.smtp  # read from the server's stats when connected


def test_connect_over_a_unix_socket():
    with tempfile.TemporaryDirectory(prefix="sf-") as short:  # a socket path is at most 107 bytes
        with SmtpFault.start(args=["--admin", f"unix:{short}/admin.sock"]) as sf:
            with SmtpFault.connect(f"unix:{short}/admin.sock") as other:
                assert other.ping() is True
                assert other.smtp == sf.smtp


def test_token_and_unauthorized(smtpfault):
    with SmtpFault.start(token="s3cret") as sf:
        assert sf.ping()
        # Verification is on: another server's CA (each generates its own) does not verify this one.
        with pytest.raises(ssl.SSLCertVerificationError):
            send_mail(smtpfault.smtp, sf.ca, "mallory@example.com")
        with SmtpFault.connect(sf.admin, token="wrong") as bad:
            with pytest.raises(SmtpFaultError) as caught:
                bad.ping()
        assert caught.value.code == "unauthorized"
        with SmtpFault.connect(sf.admin) as none:
            with pytest.raises(SmtpFaultError, match="^unauthorized: "):
                none.stats()


def test_start_failures_are_reported(tmp_path):
    with pytest.raises(SmtpFaultError) as caught:
        SmtpFault.start(binary=str(tmp_path / "no-such-binary"))
    assert caught.value.code == "start_failed"
    with pytest.raises(SmtpFaultError) as caught:
        SmtpFault.start(args=["--max-recipients", "5"])
    assert caught.value.code == "start_failed" and "exited 2" in caught.value.message
    assert "--max-recipients" in caught.value.message  # the server's own words, from its log


def test_connect_to_nothing_is_disconnected():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: connections are refused
        with pytest.raises(SmtpFaultError) as caught:
            SmtpFault.connect(f"127.0.0.1:{port}")
    assert caught.value.code == "disconnected"


def test_profiles_by_name_dict_and_file(server, tmp_path):
    assert server.load_profile("greylisting-450")["name"] == "greylisting-450"
    assert server.get_profile()["name"] == "greylisting-450"
    assert server.load_profile(RETRY_ONCE)["rules"] == 1
    assert server.get_profile()["profile"] == RETRY_ONCE
    path = tmp_path / "mine.json"
    path.write_text('{"name": "from-a-file", "rules": []}')
    assert server.load_profile(path)["name"] == "from-a-file"
    assert server.load_profile(str(path))["name"] == "from-a-file"
    assert server.validate_profile("rcpt-550-user-unknown")["valid"] is True
    server.clear_profile()
    assert server.get_profile()["name"] == ""


def test_invalid_profile_carries_every_error(server, tmp_path):
    broken = {"rules": [{"when": {"stage": "rpct"}, "do": {"greylist": "1s"}},
                        {"when": {"stage": "rcpt"}, "do": {"reply": "999 nonsense"}}]}
    with pytest.raises(SmtpFaultError) as caught:
        server.load_profile(broken, source="broken.json")
    assert caught.value.code == "invalid_profile"
    assert len(caught.value.errors) == 2
    assert caught.value.errors[0].startswith("broken.json: rules[0].when.stage: unknown stage")
    assert caught.value.errors[1].startswith("broken.json: rules[1].")
    path = tmp_path / "not-json.json"
    path.write_text("{nope")
    with pytest.raises(SmtpFaultError) as caught:
        server.validate_profile(path)
    assert caught.value.code == "invalid_profile" and caught.value.errors[0].startswith(f"{path}: invalid JSON")
    with pytest.raises(SmtpFaultError) as caught:
        server.load_profile("no-such-profile")
    assert caught.value.code == "not_found"


def test_messages_with_smtplib_verifying_the_ca(server):
    send_mail(server.smtp, server.ca, "alice@example.com", subject="Your invoice")
    envelope = server.wait_for_message(to="alice@*", timeout=10)
    assert envelope["recipients"] == ["alice@example.com"] and envelope["tls"]  # STARTTLS, verified
    assert [m["id"] for m in server.messages(to="alice@example.com")] == [envelope["id"]]
    assert [m["id"] for m in server.messages(subject="your INVOICE")] == [envelope["id"]]
    assert server.messages(subject="*receipt*") == []
    assert server.wait_for_message(subject="*invoice", timeout=1)["id"] == envelope["id"]
    assert server.messages(from_="nobody@*") == []
    got = server.message(envelope["id"], raw=True)
    assert ["Subject", "Your invoice"] in got["headers"] and got["body"] == "Hello!\r\n"
    assert "raw_base64" in got
    server.delete_message(envelope["id"])
    with pytest.raises(SmtpFaultError) as caught:
        server.message(envelope["id"])
    assert caught.value.code == "not_found"
    send_mail(server.smtp, server.ca, "bob@example.com")
    assert server.clear_messages() == 1


def test_wait_times_out_and_bad_arguments(server):
    with pytest.raises(SmtpFaultError) as caught:
        server.wait_for_message(to="nobody@*", timeout=0.2)
    assert caught.value.code == "timeout"
    with pytest.raises(SmtpFaultError) as caught:
        server.messages(limit=0)
    assert caught.value.code == "bad_argument"
    assert server.ping()  # errors leave the connection usable


def test_wait_does_not_hold_other_commands(server):
    import threading

    got = {}
    waiter = threading.Thread(target=lambda: got.update(m=server.wait_for_message(to="late@*", timeout=30)))
    waiter.start()
    assert server.stats()["messages"]["accepted"] == 0  # answered while the wait is pending
    send_mail(server.smtp, server.ca, "late@example.com")
    waiter.join(60)
    assert got["m"]["recipients"] == ["late@example.com"]


def test_sessions_stats_reset(server):
    server.load_profile(RETRY_ONCE)
    with pytest.raises(Exception):
        send_mail(server.smtp, server.ca, "carol@example.com")  # the first RCPT gets 451
    send_mail(server.smtp, server.ca, "carol@example.com")
    stats = server.stats()
    assert stats["faults"]["fired"] == 1 and stats["messages"]["accepted"] == 1
    recent = server.sessions()["recent"]
    assert len(recent) >= 2
    transcript = server.session(recent[0]["id"])["transcript"]
    assert transcript[0]["event"] == "connect" and transcript[-1]["event"] == "close"
    with pytest.raises(SmtpFaultError) as caught:
        server.session(10 ** 9)
    assert caught.value.code == "not_found"
    assert server.reset()["cleared"] == 1
    assert server.stats()["faults"]["fired"] == 0


def test_events(server):
    with server.events(timeout=30) as events:
        send_mail(server.smtp, server.ca, "dave@example.com")
        seen = []
        for event in events:
            seen.append(event["event"])
            if event["event"] == "close":
                break
    assert seen[0] == "connect" and "tls" in seen and "message" in seen


def test_ca_file_is_a_pem_removed_at_close(smtpfault):
    with SmtpFault.connect(smtpfault.admin) as other:
        path = other.ca_file
        assert open(path).read() == smtpfault.ca
        ssl.create_default_context(cafile=path)
    assert not os.path.exists(path)
