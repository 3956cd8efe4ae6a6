"""The admin socket under load: reset while 20 SMTP clients send, 50 admin clients at once, a subscriber that
stops reading. Every thread and loop here is bounded in time; the server must stay healthy throughout.
"""

import threading
import time

from conftest import check_error, poll, queued_id

SMTP_CLIENTS = 20
RESETS = 8
ADMIN_CLIENTS = 50


def seq(msg_id):
    """The store's sequence number: the last 8 hex digits of a message id."""
    return int(msg_id[-8:], 16)


def run_threads(threads, timeout):
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(max(0.1, deadline - time.monotonic()))
    stuck = [t.name for t in threads if t.is_alive()]
    assert not stuck, f"threads still running after {timeout}s: {stuck}"


def test_reset_is_atomic_under_load(server_factory):
    # No --store-dir: a message is kept the moment its id is assigned, so ids are in store order.
    srv = server_factory("--store-max-messages", "1000000", "--log-level", "warn", store=False)
    stop = threading.Event()
    acks = []  # (id, time the final dot was sent, time the 250 was read)
    failures = []
    lock = threading.Lock()

    def sender(n):
        try:
            with srv.connect(timeout=30) as c:
                c.greet(f"load{n}.example")
                i = 0
                while not stop.is_set():
                    c.cmd(f"MAIL FROM:<c{n}@example.org>", 250)
                    c.cmd(f"RCPT TO:<r{n}.{i}@example.org>", 250)
                    c.cmd("DATA", 354)
                    sent = time.monotonic()
                    c.send(b"Subject: load\r\n\r\nx\r\n.\r\n")
                    reply = c.expect(250)
                    acked = time.monotonic()
                    with lock:
                        acks.append((queued_id(reply.text), sent, acked))
                    i += 1
                c.cmd("QUIT", 221)
        except Exception as e:  # reported below, with the others
            failures.append(f"client {n}: {e!r}")

    resets = []  # (time sent, time answered, cleared)

    def resetter():
        try:
            with srv.admin(timeout=30) as admin:
                time.sleep(0.3)
                for _ in range(RESETS):
                    sent = time.monotonic()
                    resp = admin.ok("reset")
                    resets.append((sent, time.monotonic(), resp["cleared"]))
                    time.sleep(0.25)
                time.sleep(0.3)
        except Exception as e:
            failures.append(f"resetter: {e!r}")
        finally:
            stop.set()

    threads = [threading.Thread(target=sender, args=(n,), name=f"smtp{n}") for n in range(SMTP_CLIENTS)]
    threads.append(threading.Thread(target=resetter, name="resetter"))
    run_threads(threads, timeout=90)
    assert not failures, failures
    assert len(resets) == RESETS

    with srv.admin() as admin:
        listed = admin.ok("messages.list", limit=100000)
        stats = admin.ok("stats")["messages"]
    kept = [m["id"] for m in listed["messages"]]
    acked = {msg_id: (sent, got) for msg_id, sent, got in acks}
    assert len(acked) == len(acks), "an id was acknowledged twice"
    assert len(set(kept)) == len(kept) and listed["truncated"] is False
    assert set(kept) <= acked.keys(), f"kept but never acknowledged: {sorted(set(kept) - set(acked))[:5]}"
    # Nothing lost, nothing counted twice: every acknowledged message was cleared by a reset, or is kept.
    cleared = [c for _, _, c in resets]
    assert sum(cleared) + len(kept) == len(acked), (cleared, len(kept), len(acked))
    assert all(c > 0 for c in cleared), f"a reset found nothing to clear: {cleared} (no load?)"
    assert stats["accepted"] == len(kept) and stats["kept"] == len(kept) and stats["evicted"] == 0, stats

    # Each reset took a prefix of the ids: reset k cleared exactly the next cleared[k] messages in id order.
    order = sorted(acked, key=seq)
    assert order[sum(cleared):] == sorted(kept, key=seq), "the kept messages are not the newest ones"
    assert kept == sorted(kept, key=seq), "messages.list is not oldest first"
    start = 0
    for k, (reset_sent, reset_answered, n) in enumerate(resets):
        batch, later = order[start:start + n], order[start + n:]
        start += n
        # Cleared by reset k: its final dot went out before the reset was answered ...
        late = [i for i in batch if acked[i][0] > reset_answered]
        assert not late, f"reset {k} cleared messages sent after it answered: {late[:5]}"
        # ... and a message acknowledged before the reset was sent is never left for later.
        early = [i for i in later if acked[i][1] < reset_sent]
        assert not early, f"acknowledged before reset {k} was sent, yet not cleared by it: {early[:5]}"
    last_sent, last_answered, _ = resets[-1]
    kept_set = set(kept)
    after = [i for i, (sent, _) in acked.items() if sent > last_answered]
    assert after and set(after) <= kept_set, "messages sent after the last reset must all be kept"
    assert not [i for i, (_, got) in acked.items() if got < last_sent and i in kept_set]


def test_fifty_admin_clients_at_once(admin_srv):
    srv = admin_srv
    with srv.smtp(helo="fifty.example") as client:
        client.sendmail("a@example.org", ["b@example.org"], b"Subject: fifty\r\n\r\nx\r\n")
    with srv.admin() as admin:
        (m,) = admin.ok("messages.list")["messages"]
        sid = m["session"]
        pem = admin.ok("tls.ca")["pem"]
    profile = {"name": "checked", "rules": [{"when": {"stage": "mail"}, "do": {"delay": 10}}]}

    # (request, check of its response); the bad line has no id: its position says which it is.
    mix = [
        ({"cmd": "ping"}, lambda r: r["pong"] is True),
        ({"cmd": "version"}, lambda r: r["version"] and r["libuv"]),
        ({"cmd": "stats"}, lambda r: r["messages"]["accepted"] == 1),
        ({"cmd": "messages.list", "to": "b@*"}, lambda r: [x["id"] for x in r["messages"]] == [m["id"]]),
        ({"cmd": "messages.get", "message": m["id"]}, lambda r: r["body"] == "x\r\n"),
        ({"cmd": "messages.wait", "from": "a@*", "timeout": 5}, lambda r: r["message"]["id"] == m["id"]),
        ({"cmd": "messages.wait", "to": "none@*", "timeout": 0.05}, lambda r: check_error(r, "timeout")),
        ({"cmd": "profile.get"}, lambda r: r["rules"] == 0),
        ({"cmd": "profile.validate", "profile": profile}, lambda r: r["valid"] and r["name"] == "checked"),
        ({"cmd": "sessions.list"}, lambda r: [s["id"] for s in r["recent"]] == [sid]),
        ({"cmd": "sessions.get", "session": sid}, lambda r: r["session"]["transcript"]),
        ({"cmd": "tls.ca"}, lambda r: r["pem"] == pem),
        ({"cmd": "no.such"}, lambda r: check_error(r, "unknown_command")),
        ({"cmd": "ping", "x": 1}, lambda r: check_error(r, "bad_argument")),
        (None, lambda r: r["id"] is None and check_error(r, "invalid_json")),
    ]
    rounds = 4
    failures = []
    barrier = threading.Barrier(ADMIN_CLIENTS, timeout=60)

    def worker(n):
        try:
            with srv.admin(unix=n % 2 == 1, timeout=60) as c:
                barrier.wait()
                for r in range(rounds):
                    expected = []
                    lines = []
                    for k, (req, check) in enumerate(mix):
                        rid = None if req is None else f"{n}/{r}/{k}"
                        lines.append(b"{bad json" if req is None else c.encode({"id": rid, **req}))
                        expected.append((rid, check))
                    if r % 2:  # all at once, pipelined
                        c.send(b"\n".join(lines) + b"\n")
                        responses = [c.response(timeout=60) for _ in lines]
                    else:  # one at a time
                        responses = []
                        for line in lines:
                            c.send(line + b"\n")
                            responses.append(c.response(timeout=60))
                    for (rid, check), resp in zip(expected, responses):
                        assert resp["id"] == rid, f"expected the response to {rid}, got {resp!r}"
                        assert check(resp), resp
        except Exception as e:
            failures.append(f"client {n}: {e!r}")

    start = time.monotonic()
    run_threads([threading.Thread(target=worker, args=(n,), name=f"admin{n}") for n in range(ADMIN_CLIENTS)],
                timeout=120)
    assert not failures, failures[:5]
    assert time.monotonic() - start < 120
    with srv.admin() as admin:
        assert admin.ok("stats")["sessions"]["total"] == 1  # admin clients are not SMTP sessions


class LogTail:
    """Reads what the server's transcript gained since the last call (the whole file can be large)."""

    def __init__(self, path):
        self.path, self.offset = path, 0

    def new_text(self):
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            data = f.read()
        cut = data.rfind(b"\n") + 1  # whole lines only
        self.offset += cut
        return data[:cut].decode("utf-8", "replace")


def test_subscriber_that_never_reads_is_dropped(admin_srv, admin_transport):
    srv = admin_srv
    unix = admin_transport == "unix"
    sub = srv.admin(unix=unix, rcvbuf=4096)
    try:
        sub.ok("events.subscribe")
        # From here on the subscriber reads nothing. One SMTP client makes events fast: each long NOOP is a
        # command event and a reply event (~400 bytes); the server drops the subscriber past 16 MiB queued.
        tail = LogTail(srv.stderr_path)
        dropped = "admin: closing a client: it does not read its responses (more than 16 MiB queued)"
        noop, batch = b"NOOP " + b"x" * 200 + b"\r\n", 500
        deadline = time.monotonic() + 120
        sent = 0
        with srv.connect(timeout=30) as c:
            c.greet("noisy.example")
            while dropped not in tail.new_text():
                assert time.monotonic() < deadline, f"not dropped after {sent} NOOPs"
                c.send(noop * batch)
                for _ in range(batch):
                    c.expect(250)
                sent += batch
            assert sent * 400 > 16 * 1024 * 1024 / 2
            # The SMTP session goes on, and so does everyone else.
            c.cmd("MAIL FROM:<a@example.org>", 250)
            c.cmd("RCPT TO:<b@example.org>", 250)
            c.cmd("DATA", 354)
            c.send(b"Subject: after the drop\r\n\r\nx\r\n.\r\n")
            msg_id = queued_id(c.expect(250).text)
        with srv.admin(unix=unix) as other:
            assert other.ok("messages.wait", to="b@*", timeout=5)["message"]["id"] == msg_id
            assert other.ok("events.subscribe")["subscribed"] is True
            with srv.smtp(helo="after.example") as client:
                client.noop()
            assert other.events_until(lambda e: e["event"] == "close", timeout=20)
        # What the dropped subscriber still finds in its socket ends with the server's close.
        sub.sock.settimeout(30)
        total, deadline = 0, time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                chunk = sub.sock.recv(1 << 20)
            except ConnectionResetError:
                break
            if not chunk:
                break
            total += len(chunk)
        else:
            raise AssertionError("the dropped subscriber's connection did not end")
        assert total > 0
    finally:
        sub.close()
    poll(lambda: srv.running(), 1, message="the server to be running")
