"""The server under test: Server starts smtpfault on ephemeral loopback ports, stops it and checks its exit
(code 0, no sanitizer report); it reads the transcript and the captured messages (Message)."""

import json
import re
import signal
import smtplib
import subprocess
import time
from pathlib import Path

from harness.admin import AdminClient
from harness.env import (IO_TIMEOUT, START_TIMEOUT, STOP_TIMEOUT, VALGRIND, VALGRIND_ARGV, poll, sanitizer_reports,
                         server_env, smtpfault_bin)
from harness.pki import suite_pki
from harness.smtp import RawClient

class Message:
    """One message the server accepted: its envelope (ID.json) and exact bytes (ID.eml)."""

    def __init__(self, envelope, raw):
        self.envelope = envelope
        self.raw = raw

    @property
    def id(self):
        return self.envelope["id"]

    @property
    def sender(self):
        return self.envelope["sender"]

    @property
    def recipients(self):
        return self.envelope["recipients"]

    def __getitem__(self, key):
        return self.envelope[key]

    def __repr__(self):
        return f"Message({self.envelope!r}, {len(self.raw)} bytes)"


class Server:
    """A running smtpfault process on an ephemeral loopback port."""

    def __init__(self, workdir, args=(), smtp="127.0.0.1:0", store=True, log_name="stderr.log", env=None):
        self.workdir = Path(workdir)
        self.extra_env = dict(env or {})  # on top of server_env(): SMTPFAULT_PROFILES, ...
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.store_dir = self.workdir / "store" if store else None
        self.ports_file = self.workdir / "ports.json"
        self.stderr_path = self.workdir / log_name
        self.stdout_path = self.workdir / "stdout.log"
        # Every listener on an ephemeral port, so that tests run side by side; the PKI is the suite's.
        self.argv = [str(smtpfault_bin()), "--smtp", smtp, "--submission", "127.0.0.1:0", "--smtps", "127.0.0.1:0",
                     "--admin", "127.0.0.1:0",
                     "--certs-dir", str(suite_pki()), "--ports-file", str(self.ports_file)]
        if VALGRIND:
            self.argv = VALGRIND_ARGV + self.argv
        if self.store_dir is not None:
            self.argv += ["--store-dir", str(self.store_dir)]
        self.argv += [str(a) for a in args]
        self.proc = None
        self.returncode = None
        self.ports = None

    # lifecycle

    def start(self, timeout=START_TIMEOUT):
        binary = smtpfault_bin()
        assert binary.exists(), f"smtpfault binary not found at {binary} (set SMTPFAULT_BIN)"
        with open(self.stderr_path, "wb") as err, open(self.stdout_path, "wb") as out:
            self.proc = subprocess.Popen(
                self.argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env={**server_env(), **self.extra_env},
                cwd=self.workdir
            )
        deadline = time.monotonic() + timeout
        while not self.ports_file.exists():
            if self.proc.poll() is not None:
                self.returncode = self.proc.returncode
                raise AssertionError(
                    f"smtpfault exited with {self.proc.returncode} before listening; stderr:\n{self.log()}"
                )
            if time.monotonic() >= deadline:
                self.kill()
                raise AssertionError(f"smtpfault wrote no ports file within {timeout}s; stderr:\n{self.log()}")
            time.sleep(0.01)
        self.ports = json.loads(self.ports_file.read_text())
        return self

    @property
    def pid(self):
        return self.proc.pid

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, signum=signal.SIGTERM):
        assert self.running(), "the server is not running"
        self.proc.send_signal(signum)

    def wait(self, timeout=STOP_TIMEOUT):
        """Wait for exit; the exit code, or an AssertionError (after killing it) when it does not exit."""
        try:
            self.returncode = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"smtpfault (pid {self.pid}) did not exit within {timeout}s; stderr tail:\n"
                                 + self.log()[-4000:])
        return self.returncode

    def stop(self, timeout=STOP_TIMEOUT):
        """SIGTERM, then wait; returns the exit code."""
        if self.running():
            self.proc.send_signal(signal.SIGTERM)
        return self.wait(timeout)

    def finish(self, expected_exit=0):
        """A test's end of the server: stop it (SIGTERM, bounded wait), then check the exit: check_clean_exit(),
        or expected_exit and no sanitizer report. Killed in any case; AssertionError on a problem."""
        try:
            self.stop()
            if expected_exit == 0:
                self.check_clean_exit()
            else:
                assert self.returncode == expected_exit, f"exit code {self.returncode}, expected {expected_exit}"
                reports = sanitizer_reports(self.log())
                assert not reports, "sanitizer report:\n" + self.log()[-6000:]
        finally:
            self.kill()

    def kill(self):
        if self.running():
            self.proc.kill()
            self.proc.wait(timeout=10)
        if self.proc is not None:
            self.returncode = self.proc.returncode

    def check_clean_exit(self):
        """The teardown check: exit code 0 and no sanitizer report."""
        problems = []
        if self.returncode == 98 and VALGRIND:
            problems.append("valgrind found a leak or a memory error (exit code 98)")
        elif self.returncode != 0:
            problems.append(f"exit code {self.returncode} (expected 0)")
        reports = sanitizer_reports(self.log())
        if reports:
            problems.append("sanitizer report on stderr: " + reports[0])
        if "event loop closed with handles still open" in self.log():
            problems.append("libuv handles left open at exit")
        if problems:
            raise AssertionError(
                f"smtpfault {' '.join(self.argv[1:])}: " + "; ".join(problems) + "\nstderr tail:\n" + self.log()[-6000:]
            )

    # addresses

    def listener(self, name="smtp"):
        return self.ports[name]

    @property
    def host(self):
        return self.ports["smtp"]["host"]

    @property
    def port(self):
        return self.ports["smtp"]["port"]

    @property
    def address(self):
        return (self.host, self.port)

    def connect(self, timeout=IO_TIMEOUT, rcvbuf=None):
        """A raw protocol client connected to the SMTP listener (greeting not read yet)."""
        return RawClient(self.host, self.port, timeout=timeout, rcvbuf=rcvbuf)

    @property
    def admin_address(self):
        """(host, port) of the admin socket's TCP listener."""
        return (self.ports["admin"]["host"], self.ports["admin"]["port"])

    @property
    def admin_unix(self):
        """The admin socket's unix path (when started with --admin unix:PATH), else None."""
        return self.ports.get("admin_unix")

    def admin(self, unix=False, timeout=IO_TIMEOUT, token=None, rcvbuf=None):
        """An AdminClient connected to the admin socket over TCP, or over the unix socket."""
        if unix:
            assert self.admin_unix, "the server has no unix admin socket (start it with --admin unix:PATH)"
        return AdminClient(self.admin_unix if unix else self.admin_address, timeout=timeout, token=token,
                           rcvbuf=rcvbuf)

    def smtp(self, timeout=IO_TIMEOUT, helo=None):
        """An smtplib.SMTP client, connected (and EHLO'd as `helo` when given)."""
        client = smtplib.SMTP(self.host, self.port, timeout=timeout)
        if helo:
            client.ehlo(helo)
        return client

    # transcript

    def log(self):
        try:
            return self.stderr_path.read_bytes().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def log_bytes(self):
        return self.stderr_path.read_bytes()

    def log_lines(self):
        # split on LF only: str.splitlines() would also split on client text such as U+0085 or U+2028
        return self.log().rstrip("\n").split("\n") if self.log() else []

    def wait_for_log(self, pattern, timeout=10.0, count=1):
        """Poll the transcript until the regex matches count times; returns the matches."""
        regex = re.compile(pattern)

        def found():
            matches = regex.findall(self.log())
            return matches if len(matches) >= count else None

        return poll(found, timeout, message=lambda: f"{count} transcript line(s) matching {pattern!r}; tail:\n"
                    + "\n".join(self.log_lines()[-20:]))

    def session_events(self, session_id, event=None):
        """Text transcript lines of one session ('TIME #ID EVENT TEXT'), as (event, text) pairs."""
        out = []
        for line in self.log_lines():
            m = re.match(r"^\S+ #(\d+) (\S+) ?(.*)$", line)
            if m and int(m.group(1)) == session_id and (event is None or m.group(2) == event):
                out.append((m.group(2), m.group(3)))
        return out

    # captured messages

    def message_ids(self):
        if self.store_dir is None or not self.store_dir.exists():
            return []
        # ID.json is written last: a present envelope means a complete message.
        return sorted(p.stem for p in self.store_dir.glob("*.json") if not p.name.startswith("."))

    def message(self, msg_id):
        envelope = json.loads((self.store_dir / f"{msg_id}.json").read_text(encoding="utf-8"))
        raw = (self.store_dir / f"{msg_id}.eml").read_bytes()
        assert envelope["id"] == msg_id, f"{msg_id}.json holds id {envelope['id']!r}"
        assert envelope["size"] == len(raw), f"{msg_id}: envelope size {envelope['size']} != {len(raw)} bytes on disk"
        return Message(envelope, raw)

    def messages(self):
        """Every captured message, oldest first (IDs are a fixed prefix and a hexadecimal counter)."""
        return [self.message(i) for i in self.message_ids()]

    def wait_for_messages(self, count, timeout=10.0):
        poll(lambda: len(self.message_ids()) >= count, timeout, message=f"{count} stored message(s)")
        return self.messages()


def address(srv, listener="smtp"):
    """(host, port) of one of the server's listeners ("smtp", "submission", "smtps", "admin")."""
    entry = srv.listener(listener)
    return entry["host"], entry["port"]
