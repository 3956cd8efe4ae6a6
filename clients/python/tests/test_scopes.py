"""Scopes through the package: each its own listeners, profile and messages, in parallel; their end (close,
the client's close, keep); scoped events and waits; the pytest fixtures and their marker."""

import smtplib
import socket
import threading
import time

import pytest

from conftest import IO_TIMEOUT, send_mail
from smtpfault import SmtpFault, SmtpFaultError

END_DEADLINE = 30  # seconds for a scope's listeners to close once it ended (the server does it at once)


def refuses(listener):
    """Whether connections to the listener are refused now."""
    try:
        socket.create_connection((listener.host, listener.port), timeout=IO_TIMEOUT).close()
        return False
    except ConnectionRefusedError:
        return True


def wait_until(predicate, what):
    deadline = time.monotonic() + END_DEADLINE
    while not predicate():
        assert time.monotonic() < deadline, f"not true in {END_DEADLINE} s: {what}"
        time.sleep(0.02)


def test_a_scope_has_its_own_listeners_profile_and_messages(smtpfault):
    scope = smtpfault.create_scope("local-451-temporary-failure")
    try:
        own = {smtpfault.smtp.port, smtpfault.submission.port, smtpfault.smtps.port}
        assert {scope.smtp.port, scope.submission.port, scope.smtps.port}.isdisjoint(own)
        assert scope.profile["name"] == "local-451-temporary-failure"
        with pytest.raises(smtplib.SMTPDataError) as caught:
            send_mail(scope.smtp, scope.ca, "alice@example.com")
        assert caught.value.smtp_code == 451
        assert scope.stats()["faults"]["fired"] == 1 and scope.messages() == []
        scope.clear_profile()
        send_mail(scope.smtp, scope.ca, "alice@example.com")
        envelope = scope.wait_for_message(to="alice@example.com", timeout=10)
        assert scope.message(envelope["id"])["body"] == "Hello!\r\n"
        assert envelope["id"] not in [m["id"] for m in smtpfault.messages()]  # not the server's own
        assert scope.id in [s["scope"] for s in smtpfault.scopes()]
        assert scope.reset()["cleared"] == 1
        assert scope.get_profile()["name"] == "local-451-temporary-failure"  # reset: its start profile
    finally:
        scope.close()
    wait_until(lambda: refuses(scope.smtp), "the closed scope's port refuses")
    with pytest.raises(SmtpFaultError) as caught:
        scope.stats()
    assert caught.value.code == "not_found"
    scope.close()  # a second close does nothing


def test_scopes_in_parallel(smtpfault):
    results, errors = {}, []

    def one(i):
        try:
            with smtpfault.create_scope({"name": f"parallel-{i}", "rules": []}) as scope:
                send_mail(scope.smtp, scope.ca, f"user{i}@example.com")
                scope.wait_for_message(to=f"user{i}@*", timeout=30)
                results[i] = [m["recipients"] for m in scope.messages()]
        except Exception as e:  # reported by the main thread
            errors.append(e)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    assert results == {i: [[f"user{i}@example.com"]] for i in range(6)}


def test_scopes_end_with_the_client_unless_kept(smtpfault):
    other = SmtpFault.connect(smtpfault.admin)
    ends, kept = other.create_scope(), other.create_scope(keep=True)
    assert kept.keep is True and ends.keep is False
    other.close()
    wait_until(lambda: refuses(ends.smtp), "a scope ends with the connection that created it")
    assert ends.id not in [s["scope"] for s in smtpfault.scopes()]
    assert not refuses(kept.smtp)
    smtpfault._conn().request("scope.delete", {"scope": kept.id})  # a kept scope outlives its client
    wait_until(lambda: refuses(kept.smtp), "a deleted scope's port refuses")


def test_scope_options_and_errors(smtpfault, tmp_path):
    with smtpfault.create_scope(listeners=["smtp"]) as scope:
        assert scope.smtp and scope.submission is None and scope.smtps is None
    path = tmp_path / "p.json"
    path.write_text('{"name": "from-file", "rules": []}')
    with smtpfault.create_scope(path) as scope:
        assert scope.get_profile()["name"] == "from-file"
    with pytest.raises(SmtpFaultError) as caught:
        smtpfault.create_scope({"rules": [{"when": {"stage": "rpct"}, "do": {"greylist": "1s"}}]})
    assert caught.value.code == "invalid_profile" and "rules[0].when.stage" in caught.value.errors[0]
    with pytest.raises(SmtpFaultError) as caught:
        smtpfault.create_scope("no-such-profile")
    assert caught.value.code == "not_found"
    with pytest.raises(SmtpFaultError) as caught:
        smtpfault.create_scope(listeners=["pop3"])
    assert caught.value.code == "bad_argument"


def test_scope_events_end_with_the_scope(smtpfault):
    scope = smtpfault.create_scope()
    with scope.events(timeout=30) as events:
        send_mail(scope.smtp, scope.ca, "erin@example.com")
        seen = []
        for event in events:
            assert event["scope"] == scope.id
            seen.append(event["event"])
            if event["event"] == "close":
                break
        assert "message" in seen
        scope.close()
        assert [e["event"] for e in events][-1:] == ["scope_end"]  # then the stream ends


def test_a_pending_wait_ends_with_its_scope(smtpfault):
    scope = smtpfault.create_scope()
    errors = []

    def wait():
        try:
            scope.wait_for_message(timeout=60)
        except SmtpFaultError as e:
            errors.append(e.code)

    waiter = threading.Thread(target=wait)
    waiter.start()
    # Nothing tells when the wait has reached the server; the answer is not_found either way (a pending wait
    # gets "scope ... ended", a late one "no scope has the id"), so this pause only makes the first likelier.
    time.sleep(0.2)
    scope.close()
    waiter.join(90)
    assert errors == ["not_found"]


@pytest.mark.smtpfault("local-451-temporary-failure")
def test_fixture_scope_with_a_marker(smtpfault_scope):
    assert smtpfault_scope.get_profile()["name"] == "local-451-temporary-failure"
    with pytest.raises(smtplib.SMTPDataError):
        send_mail(smtpfault_scope.smtp, smtpfault_scope.ca, "frank@example.com")


def test_fixture_scope_is_fresh_per_test(smtpfault_scope):
    assert smtpfault_scope.get_profile()["name"] == "" and smtpfault_scope.messages() == []
    send_mail(smtpfault_scope.smtp, smtpfault_scope.ca, "gina@example.com")
    assert smtpfault_scope.wait_for_message(to="gina@*")["recipients"] == ["gina@example.com"]
