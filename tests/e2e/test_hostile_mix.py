"""
The hostile mix: many kinds of abuse at once against one server for a while (SMTPFAULT_HOSTILE_SECONDS,
default 60), honest clients sending mail among them, then SIGTERM while all of it is still going on.

What must hold (the server is the ASan + UBSan build under `make test-asan`):
- the server exits 0 within its drain period plus a margin, with no sanitizer report (the fixture checks);
- every message an honest client saw acknowledged (250 with a queued id) is on disk, ID.eml and ID.json;
- honest clients keep being served throughout: each worker gets mail through in every window of the run;
- the admin socket answers the token holder throughout, whatever strangers send it.

The abusers: slow partial lines, garbage bytes, over-long lines, a DATA body that never ends, 10,000
pipelined NOOPs, bad base64 in AUTH, TLS garbage on the implicit-TLS port, clients that vanish mid-DATA,
connections that are never read from, and on the admin socket: requests without the token of many keys,
\\u0000 escapes, partial lines that never end, and too many connections. Fault rules for the abusers' EHLO
names (reset, drip, delay, hang) run at the same time.
"""

import json
import os
import random
import smtplib
import socket
import ssl
import threading
import time

from conftest import IO_TIMEOUT, SLOW, AdminClient, queued_id

SECONDS = float(os.environ.get("SMTPFAULT_HOSTILE_SECONDS", "60"))
TOKEN = "hostile-mix-token"
DRAIN = 3

# Faults for the abusers only: honest clients say EHLO honest*.
PROFILE = {"name": "hostile-mix", "rules": [
    {"when": {"stage": "mail", "helo": "reset*"}, "do": {"close": "reset"}},
    {"when": {"stage": "rcpt", "helo": "drip*"}, "do": {"reply": "250 2.1.5 OK, slowly", "drip": 5}},
    {"when": {"stage": "mail", "helo": "delay*"}, "do": {"delay": "30s"}},
    {"when": {"stage": "data_end", "helo": "hang*"}, "do": {"hang": True}},
]}


class Run:
    """The shared state of one mix: the stop flag, what honest clients got acknowledged, errors seen."""

    def __init__(self, srv):
        self.srv = srv
        self.stop = threading.Event()
        self.stopping = threading.Event()  # SIGTERM sent: the admin socket closes with the listeners
        self.lock = threading.Lock()
        self.acked = []  # queued ids
        self.honest_times = []  # monotonic time of each acknowledged message
        self.admin_ok = 0
        self.problems = []

    def note(self, problem):
        with self.lock:
            self.problems.append(problem)


def connect(srv, name="smtp", timeout=5.0):
    listener = srv.listener(name)
    return socket.create_connection((listener["host"], listener["port"]), timeout=timeout)


def quietly(fn):
    """Run an abuser's step; the server closing on it (reset, timeout, refusal) is the expected outcome."""
    try:
        fn()
    except (OSError, ssl.SSLError, smtplib.SMTPException, ValueError):
        pass


# -- honest clients -----------------------------------------------------------------------------------------


def honest(run, worker):
    n = 0
    while not run.stop.is_set():
        n += 1
        msg = f"Subject: honest {worker}.{n}\r\nFrom: <honest@example.org>\r\n\r\nhello {n}\r\n".encode()
        try:
            with smtplib.SMTP(run.srv.host, run.srv.port, timeout=IO_TIMEOUT) as client:
                client.ehlo(f"honest{worker}.example")
                client.mail("honest@example.org")
                client.rcpt(f"worker{worker}@example.org")
                code, resp = client.data(msg)
            if code == 250:
                with run.lock:
                    run.acked.append(queued_id(resp))
                    run.honest_times.append(time.monotonic())
        except (OSError, smtplib.SMTPException):
            # Refused under load (421 too many connections, 452 storage) is allowed; losing an
            # acknowledged message is not, and is what the end of the test checks.
            pass


def admin_holder(run):
    """The token holder: ping, stats and sessions.list throughout."""
    while not run.stop.is_set():
        try:
            with AdminClient(run.srv.admin_address, token=TOKEN, timeout=IO_TIMEOUT) as admin:
                for cmd in ("ping", "stats", "sessions.list"):
                    admin.ok(cmd)
            with run.lock:
                run.admin_ok += 1
        except (OSError, AssertionError) as e:
            if not run.stopping.is_set():
                run.note(f"admin holder: {e!r}")
        time.sleep(0.2)


# -- abusers ----------------------------------------------------------------------------------------------


def slowloris(run, rng):
    s = connect(run.srv)
    try:
        s.recv(512)
        for ch in b"EHLO slow.example":
            if run.stop.is_set():
                return
            s.sendall(bytes([ch]))
            time.sleep(0.05)
    finally:
        s.close()


def garbage(run, rng):
    with connect(run.srv) as s:
        s.sendall(bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 4096))))
        s.settimeout(1)
        s.recv(4096)


def long_line(run, rng):
    with connect(run.srv) as s:
        s.recv(512)
        s.sendall(b"EHLO " + b"x" * 70000 + b"\r\n")
        s.settimeout(2)
        s.recv(4096)


def endless_data(run, rng):
    with connect(run.srv) as s:
        f = s.makefile("rb")
        f.readline()
        s.sendall(b"EHLO endless.example\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n")
        chunk = b"y" * 65536
        for _ in range(64):  # 4 MiB, no final dot
            if run.stop.is_set():
                return
            s.sendall(chunk)


def pipelined_noops(run, rng):
    with connect(run.srv, timeout=10) as s:
        s.sendall(b"EHLO pipe.example\r\n" + b"NOOP\r\n" * 10000 + b"QUIT\r\n")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and s.recv(65536):
            pass


def bad_auth(run, rng):
    with connect(run.srv) as s:
        s.recv(512)
        s.sendall(b"EHLO auth.example\r\nAUTH PLAIN !!!not-base64!!!\r\nAUTH LOGIN\r\n" + b"%%%%\r\n" * 30)
        s.settimeout(2)
        s.recv(8192)


def tls_garbage(run, rng):
    with connect(run.srv, "smtps") as s:
        s.sendall(b"\x16\x03\x01\x02\x00" + bytes(rng.getrandbits(8) for _ in range(512)))
        s.settimeout(1)
        s.recv(4096)


def vanish_mid_data(run, rng):
    s = connect(run.srv)
    s.recv(512)
    s.sendall(b"EHLO vanish.example\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n"
              b"Subject: gone\r\n\r\nhalf a mess")
    time.sleep(0.05)
    if rng.random() < 0.5:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # RST
    s.close()


def never_reads(run, rng):
    with connect(run.srv) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.sendall(b"EHLO deaf.example\r\n" + b"HELP\r\n" * 2000)
        time.sleep(1)


def faulted(run, rng):
    helo = rng.choice(["reset", "drip", "delay", "hang"])
    with connect(run.srv, timeout=3) as s:
        s.sendall(f"EHLO {helo}{rng.randint(0, 999)}.example\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\n"
                  "DATA\r\nSubject: x\r\n\r\nx\r\n.\r\n".encode())
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline and not run.stop.is_set():
            if not s.recv(4096):
                break


def admin_stranger(run, rng):
    """Requests without the token: many keys, NUL escapes, long and partial lines."""
    kind = rng.randrange(4)
    with socket.create_connection(run.srv.admin_address, timeout=3) as s:
        if kind == 0:
            s.sendall(("{" + ",".join(f'"k{i}":1' for i in range(50000)) + ',"cmd":"ping"}\n').encode())
        elif kind == 1:
            s.sendall(b'{"cmd":"ping","token":"' + TOKEN.encode() + b'\\u0000x"}\n')
        elif kind == 2:
            s.sendall(b'{"cmd":"stats","pad":"' + b"z" * 200000)
        else:
            s.sendall(b'{"cmd":"messages.wait","timeout":30}\n')
        s.settimeout(2)
        s.recv(4096)


ABUSERS = [slowloris, garbage, long_line, endless_data, pipelined_noops, bad_auth, tls_garbage, vanish_mid_data,
           never_reads, faulted, admin_stranger]


def abuser(run, seed):
    rng = random.Random(seed)
    while not run.stop.is_set():
        quietly(lambda: rng.choice(ABUSERS)(run, rng))


def test_hostile_mix_then_sigterm_under_load(server_factory, capsys):
    srv = server_factory("--admin-token", TOKEN, "--drain-timeout", str(DRAIN), "--idle-timeout", "20",
                         "--max-connections", "300", "--max-inflight-bytes", "64M", "-q")
    with AdminClient(srv.admin_address, token=TOKEN) as admin:
        admin.ok("profile.load", profile=PROFILE)
    run = Run(srv)
    threads = [threading.Thread(target=honest, args=(run, w), daemon=True) for w in range(3)]
    threads += [threading.Thread(target=admin_holder, args=(run,), daemon=True)]
    threads += [threading.Thread(target=abuser, args=(run, seed), daemon=True) for seed in range(12)]
    started = time.monotonic()
    for t in threads:
        t.start()
    time.sleep(SECONDS)

    # SIGTERM under load: every thread still at it.
    run.stopping.set()
    srv.signal()
    stopping = time.monotonic()
    code = srv.wait(timeout=DRAIN + 30 * SLOW)
    took = time.monotonic() - stopping
    run.stop.set()
    for t in threads:
        t.join(timeout=30)
    with capsys.disabled():
        print(f"\nhostile mix, {SECONDS:.0f} s: {len(run.acked)} honest messages acknowledged, "
              f"{run.admin_ok} admin rounds, stopped {took:.1f} s after SIGTERM")
    assert code == 0, srv.log()[-4000:]
    assert took < DRAIN + 15 * SLOW, f"the server took {took:.1f} s to stop (drain {DRAIN} s)"

    # Honest mail went through all along: in each quarter of the run, and all of it is on disk.
    assert run.acked, "no honest message was acknowledged"
    quarters = {min(3, int((t - started) / (SECONDS / 4))) for t in run.honest_times}
    assert quarters == {0, 1, 2, 3}, f"honest clients were starved in some quarter of the run: {sorted(quarters)}"
    on_disk = set(srv.message_ids())
    lost = [i for i in run.acked if i not in on_disk]
    assert not lost, f"{len(lost)} of {len(run.acked)} acknowledged messages are not on disk: {lost[:5]}"
    for msg_id in run.acked:
        envelope = json.loads((srv.store_dir / f"{msg_id}.json").read_text())
        assert envelope["id"] == msg_id
    assert run.admin_ok > 0 and not run.problems, run.problems[:5]
